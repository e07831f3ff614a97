"""`lstmkit wordlm`, `lstmkit.WordLM`: a word-level language model (train, eval, sample, inspect).

Embedding -> stacked LSTM -> softmax over a vocabulary of the training text's most frequent words
(``<unk>`` for the rest, ``<eos>`` at each line end), trained by truncated BPTT with the state carried
from one window to the next. The defaults are Zaremba et al.'s (2014) small Penn Treebank model: 2 x 200,
batch 20, 20 steps, SGD at 20 on the mean loss per word (their rate of 1 on the loss summed over the 20
steps) halved every epoch after the fourth, gradient norm clipped at 0.25 (their 5 on the sum), 13 epochs.
Perplexity = exp(mean negative log-likelihood per token), every token scored once, ``<eos>`` included,
the state carried through the whole file (one stream).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from lstmkit.config import NATURAL, NON_NEGATIVE, POSITIVE_INT, RATE, SEED, option, with_defaults
from lstmkit.data.text import BPTTBatcher, split_train_val
from lstmkit.data.words import TOKENIZERS, WordVocabulary, read_word_corpus, text_tokens
from lstmkit.errors import InputError
from lstmkit.models.wordlm import SOFTMAXES, State, WordNetwork
from lstmkit.plots.record import GateRecord
from lstmkit.tasks.estimator import Estimator
from lstmkit.tasks.registry import Task, register
from lstmkit.tasks.runner import Outcome, actions_of, add_command, add_train_command
from lstmkit.train.loop import TrainConfig

EVAL_WINDOW = 200  # tokens per call when scoring a file (the state is carried; only the speed changes)


@with_defaults(
    epochs=13,
    optimizer="sgd",
    lr=20.0,
    schedule="decay",
    lr_decay=0.5,
    decay_after=4,
    grad_clip=0.25,
    patience=0,
)
class WordLMConfig(TrainConfig):
    """The word model's size, vocabulary, regularisers and how its text is cut into training windows."""

    hidden_size: int = option(200, "units per LSTM layer", POSITIVE_INT)
    num_layers: int = option(2, "stacked LSTM layers", POSITIVE_INT, flag="--layers")
    embed_size: int = option(200, "word embedding size", POSITIVE_INT)
    dropout: float = option(
        0.0, "dropout between the layers and before the softmax (Zaremba: 0.5 medium, 0.65 large)", RATE
    )
    input_dropout: float | None = option(None, "dropout on the embeddings (default: --dropout)", RATE)
    embed_dropout: float = option(0.0, "drop whole words from the embedding (AWD-LSTM: 0.1)", RATE)
    locked_dropout: bool = option(False, "one dropout mask per sequence, not per step (AWD-LSTM)")
    recurrent_dropout: float = option(0.0, "dropout on h_{t-1}, one mask per sequence (Gal)", RATE)
    weight_drop: float = option(0.0, "DropConnect on the recurrent weights W_hh (AWD-LSTM: 0.5)", RATE)
    tie_weights: bool = option(False, "the softmax's weights are the embedding's (Press & Wolf)")
    softmax: str = option(
        "full", "the full softmax, or the adaptive one (faster for large vocabularies)", choices=SOFTMAXES
    )
    max_vocab: int = option(10_000, "most words kept, <unk> and <eos> included", POSITIVE_INT)
    min_count: int = option(1, "fewest occurrences of a kept word", POSITIVE_INT)
    tokenizer: str = option(
        "split", "split: on spaces (text tokenised already); words: words and punctuation", choices=TOKENIZERS
    )
    seq_len: int = option(20, "truncated-BPTT window in words", POSITIVE_INT, flag="--bptt")
    batch_size: int = option(20, "text streams trained side by side", POSITIVE_INT)


def carried(state: State) -> State:
    """STATE's values without their gradient path (truncated BPTT)."""
    return tuple((h.detach(), c.detach()) for h, c in state)


class WordLMJob:
    """Truncated BPTT over ``batch_size`` streams of the training ids; the state carried from window to
    window is saved in checkpoints, for an exact --resume."""

    def __init__(self, model: WordNetwork, train_ids, val_ids, batch_size: int, seq_len: int) -> None:
        self.model, self.val_ids = model, val_ids
        self.batcher = BPTTBatcher(train_ids, batch_size, seq_len)
        self.state: State | None = None

    def batches(self, epoch: int) -> list:
        self.state = None  # each pass over the text starts from a zero state
        return list(self.batcher)

    def loss(self, batch) -> tuple[torch.Tensor, int]:
        inputs, targets = batch  # (B, T) each; under torchrun, this rank's streams
        hidden, state = self.model(inputs.long(), self.state)  # (B, T, P)
        self.state = carried(state)
        network = getattr(self.model, "module", self.model)  # under DDP, the network it wraps
        return network.nll(hidden, targets), targets.numel()

    def validate(self) -> float:
        return mean_nll(self.model, self.val_ids)

    def extra_state(self) -> dict[str, torch.Tensor]:
        if self.state is None:
            return {}
        return {f"{name}{layer}": t for layer, pair in enumerate(self.state) for name, t in zip("hc", pair)}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        layers = len(tensors) // 2
        self.state = tuple((tensors[f"h{layer}"], tensors[f"c{layer}"]) for layer in range(layers))


@torch.no_grad()
def mean_nll(model: WordNetwork, ids: torch.Tensor) -> float:
    """Mean negative log-likelihood per token of ids[1:] given what precedes it, in nats: one stream, the
    state carried from window to window (as Zaremba et al. score, with batch 1)."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    for inputs, targets in BPTTBatcher(ids, 1, EVAL_WINDOW):  # (1, T) each
        hidden, state = model(inputs.long(), state)
        total += model.nll(hidden, targets, reduction="sum").item()
        count += targets.numel()
    model.train(was_training)
    return total / count


def memory_available() -> int | None:
    """Bytes of memory free for this process (Linux's MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class WordLM(Estimator):
    """A word-level language model: embedding -> stacked LSTM -> softmax over the vocabulary.

        lm = lstmkit.WordLM().fit("ptb.train.txt", valid="ptb.valid.txt", test="ptb.test.txt")
        lm.evaluate()                        # {"val_perplexity": ..., "test_perplexity": ..., ...}
        lm.evaluate("other.txt")             # {"perplexity": ..., "loss": nats/word, ...}
        lm.sample("the company said", length=30, top_k=50)
        lm.gates("the stock fell N % .")     # the gate record, for lstmkit.plots or the HTML viewer

    ``fit`` builds the vocabulary from the training text, validates on VALID (default: the last 10% of
    the training text, at most 500,000 tokens) and, given TEST, scores it with the best weights.
    """

    task = "wordlm"
    Config = WordLMConfig
    loss_name = "cross-entropy (nats/word)"
    unit = "words"

    def initialize(self, text: str | Path, valid: str | Path | None = None, verbose: bool = False) -> WordLM:
        """Read TEXT (a path) into the vocabulary and ids, and VALID (or the last 10% of TEXT), and make an
        untrained network from the seed; ``fit()`` then trains it."""
        cfg = self.config
        self.vocab, ids = read_word_corpus(text, cfg.tokenizer, None, cfg.max_vocab, cfg.min_count)
        if valid is None:
            self.train_ids, self.val_ids = split_train_val(ids)
        else:
            self.train_ids, self.val_ids = ids, self._read(valid)
        need = cfg.batch_size * cfg.seq_len + 1
        if len(self.train_ids) < need:
            raise InputError(
                f"{text}: {len(self.train_ids):,} training tokens are too few for --batch-size "
                f"{cfg.batch_size} x --bptt {cfg.seq_len} (need {need:,}); use a longer text or smaller "
                "--batch-size/--bptt"
            )
        if len(self.val_ids) < 2:
            raise InputError(f"{valid or text}: too few tokens to validate on; give a longer --valid file")
        self._check_memory()
        torch.manual_seed(cfg.seed)
        self.network = self._build_network().eval()
        self.training_state, self.metrics = None, None
        if verbose:
            unknown = float((self.train_ids == 0).float().mean())
            print(
                f"wordlm: {text}: {len(ids):,} tokens; vocabulary of {len(self.vocab):,} words "
                f"({unknown:.1%} of the training tokens <unk>); training on {len(self.train_ids):,}, "
                f"validating on {len(self.val_ids):,} ({valid or 'the last part of the training text'}).\n"
                f"Model: embedding {cfg.embed_size} -> LSTM {cfg.num_layers} x {cfg.hidden_size} -> "
                f"{cfg.softmax} softmax over {len(self.vocab):,} words, {self.parameter_count():,} "
                f"parameters. Uniform guessing scores perplexity {len(self.vocab):,}."
            )
        return self

    def _read(self, path: str | Path) -> torch.Tensor:
        return read_word_corpus(path, self.config.tokenizer, self.vocab)[1]

    def _check_memory(self) -> None:
        """InputError, before anything is allocated, if the embedding and softmax with their gradients and
        optimizer state, and a batch's logits, would not fit in the memory this machine has free."""
        cfg, words = self.config, len(self.vocab)
        out = cfg.embed_size if cfg.tie_weights else cfg.hidden_size
        weights = words * (cfg.embed_size + (0 if cfg.tie_weights else out + 1))
        need = 4 * (4 * weights + 3 * cfg.batch_size * cfg.seq_len * words)  # float32: w, grad, 2 states
        free = memory_available()
        if free is not None and need > free:
            raise InputError(
                f"a vocabulary of {words:,} words needs about {need / 2**30:.1f} GiB for its embedding and "
                f"softmax, more than the {free / 2**30:.1f} GiB free here; lower --max-vocab (or raise "
                "--min-count), or --embed-size / --batch-size"
            )

    def fit(
        self,
        text: str | Path | None = None,
        *,
        valid: str | Path | None = None,
        test: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        verbose: bool = True,
        **training,
    ) -> WordLM:
        """Train on TEXT (a path; None: the text given to ``initialize``), validating on VALID; TEST (a
        path) is scored by ``evaluate()``. Training settings (epochs=, lr=, minutes=, ...) may be given here;
        CHECKPOINT_DIR keeps a resumable checkpoint (``resume=True`` continues from it)."""
        self._configure(training, checkpoint_dir, resume)
        if text is not None:
            self.initialize(text, valid, verbose)
        elif getattr(self, "train_ids", None) is None:
            raise InputError("fit() needs a text, or initialize(text) before it")
        self.test_ids = None if test is None else self._read(test)
        cfg = self.config
        network = self.network.train()
        job = WordLMJob(network, self.train_ids, self.val_ids, cfg.batch_size, cfg.seq_len)
        self._finish_fit(network, self._trainer(job, checkpoint_dir, verbose).fit(resume))
        return self

    def parameter_count(self) -> int:
        network = self._check_fitted()
        return sum(p.numel() for p in network.parameters())  # a tied matrix counts once

    def evaluate(self, text: str | Path | None = None) -> dict:
        """Perplexity: of the validation text and, given to fit, the test text (TEXT None: the metrics of
        metrics.json), or of the file TEXT."""
        network, cfg = self._check_fitted(), self.config
        if text is not None:
            ids = self._read(text)
            if len(ids) < 2:
                raise InputError(f"{text}: needs at least 2 tokens to score a prediction")
            loss = mean_nll(network, ids)
            unknown = int((ids == 0).sum())
            return {"perplexity": math.exp(loss), "loss": loss, "tokens": len(ids), "unknown_tokens": unknown}
        if getattr(self, "val_ids", None) is None:
            raise InputError("evaluate() needs a text: this model was loaded, not fitted here")
        loss = mean_nll(network, self.val_ids)
        state = self.training_state
        seconds = state.elapsed if state is not None else 0.0
        trained = state.step * cfg.batch_size * cfg.seq_len if state is not None else 0
        metrics = {
            "val_loss": loss,
            "val_perplexity": math.exp(loss),
            "train_tokens": len(self.train_ids),
            "val_tokens": len(self.val_ids),
            "vocabulary": len(self.vocab),
            "softmax": cfg.softmax,
            "words_per_second": round(trained / max(seconds, 1e-9)),
            "parameters": self.parameter_count(),
        }
        if getattr(self, "test_ids", None) is not None:
            test_loss = mean_nll(network, self.test_ids)
            metrics.update(
                test_loss=test_loss, test_perplexity=math.exp(test_loss), test_tokens=len(self.test_ids)
            )
        return self._record(metrics)

    def prompt_ids(self, prompt: str) -> torch.Tensor:
        """PROMPT's ids, the text continuing on its last line (an empty prompt starts a new line);
        InputError if every word of it is unknown to the model."""
        if not prompt.strip():
            return torch.tensor([self.vocab.word_to_id[WordVocabulary.EOS]])
        ids = self.vocab.encode(prompt, self.config.tokenizer, end=prompt.endswith("\n"))
        if bool((ids == 0).all()):
            raise InputError(
                f"every word of the prompt {prompt!r} is unknown to the model; use words of its "
                f"vocabulary (its most frequent: {', '.join(self.vocab.words[2:7])})"
            )
        return ids

    def sample(
        self, prompt: str = "", length: int = 50, temperature: float = 1.0, top_k: int = 0, seed: int = 0
    ) -> str:
        """LENGTH words that continue PROMPT, drawn at TEMPERATURE (0: always the likeliest) from the
        TOP_K likeliest (0: all); each <eos> is a line break."""
        generator = torch.Generator().manual_seed(seed)
        ids = self._check_fitted().sample(self.prompt_ids(prompt), length, temperature, top_k, generator)
        return self.vocab.decode(ids)

    @torch.no_grad()
    def gates(self, text: str, title: str | None = None) -> GateRecord:
        """Every gate and state of every layer while the model reads TEXT, one step per word, with its
        guesses of the next word."""
        network = self._check_fitted().eval()
        if any(lstm.proj_size for lstm in network.layers):
            raise InputError("inspect needs layers without projection; this model ties weights of two sizes")
        tokens = text_tokens(text, self.config.tokenizer, end=False)
        if not tokens:
            raise InputError("the text has no words; give the text the model should read")
        ids = torch.tensor(self.vocab.ids(tokens))  # (T,)
        hidden, _, trace = network(ids.view(1, -1), return_trace=True)  # (1, T, P); (L, 1, T, H)
        log_probs = network.log_probs(hidden[0])  # (T, V)
        top = log_probs.exp().topk(3, dim=-1)
        words = self.vocab.words
        notes = [
            "next: " + ", ".join(f"{words[i]} {p:.0%}" for p, i in zip(ps.tolist(), ix.tolist()))
            for ps, ix in zip(top.values, top.indices)
        ]
        summary = f"{len(tokens)} words"
        if len(ids) > 1:
            loss = -log_probs[:-1].gather(1, ids[1:, None]).mean().item()
            summary += f"; perplexity {math.exp(loss):.1f} predicting each next one"
        return GateRecord.from_trace(
            trace.map(lambda t: t[:, 0]),
            False,
            task=self.task,
            title=title or "word model",
            tokens=tokens,
            token_kind="word",
            summary=summary,
            notes=notes,
            unknown=(ids == 0).nonzero().view(-1).tolist(),
        )

    def _describe_fitted(self) -> str:
        return f"{len(self.vocab):,} words, {self.parameter_count():,} parameters"

    def _fitted_state(self) -> dict:
        return {"words": self.vocab.words[2:]}

    def _restore_fitted(self, state: dict) -> None:
        self.vocab, self.train_ids, self.val_ids = WordVocabulary(state["words"]), None, None

    def _build_network(self) -> WordNetwork:
        cfg = self.config
        return WordNetwork(
            len(self.vocab),
            cfg.embed_size,
            cfg.hidden_size,
            cfg.num_layers,
            dropout=cfg.dropout,
            input_dropout=cfg.input_dropout,
            embed_dropout=cfg.embed_dropout,
            locked=cfg.locked_dropout,
            recurrent_dropout=cfg.recurrent_dropout,
            weight_drop=cfg.weight_drop,
            tie_weights=cfg.tie_weights,
            softmax=cfg.softmax,
        )


# ---- the command line ------------------------------------------------------------------------------------
def train(lm: WordLM, args: argparse.Namespace, out_dir: Path) -> Outcome:
    lm.fit(args.text, valid=args.valid, test=args.test, checkpoint_dir=out_dir, resume=args.resume)
    metrics = lm.evaluate()
    scores = f"Validation perplexity {metrics['val_perplexity']:.1f}"
    if "test_perplexity" in metrics:
        scores += f", test perplexity {metrics['test_perplexity']:.1f}"
    sample = lm.sample("", 40, 1.0, 50, seed=lm.config.seed)
    summary = f"{scores} (best weights, step {lm.training_state.best_step}).\nA sample (top 50):\n{sample}"
    return Outcome(summary, f"Sample more with: lstmkit wordlm sample {out_dir} --prompt 'the company'")


def sample(args: argparse.Namespace) -> None:
    lm = WordLM.load(args.model_dir)
    ids = lm.prompt_ids(args.prompt)
    unknown = sorted(
        {t for t, i in zip(text_tokens(args.prompt, lm.config.tokenizer), ids.tolist()) if i == 0}
    )
    if unknown and args.prompt.strip():
        print(f"note: the model never saw {', '.join(unknown)}; read as <unk>", file=sys.stderr)
    text = lm.sample(args.prompt, args.length, args.temperature, args.top_k, args.seed)
    print(f"{args.prompt} {text}" if args.prompt.strip() else text)


def evaluate(args: argparse.Namespace) -> None:
    scores = WordLM.load(args.model_dir).evaluate(args.text)
    if args.json:
        print(json.dumps(scores))
        return
    print(
        f"{args.text}: {scores['tokens']:,} tokens ({scores['unknown_tokens']:,} unknown to the model): "
        f"perplexity {scores['perplexity']:.2f} ({scores['loss']:.4f} nats/word)"
    )


TRAIN_TEXTS = (
    "train on a UTF-8 text file",
    "Train a word LSTM language model on TRAIN (UTF-8, one sentence or paragraph per line; <eos> ends each "
    "line). The vocabulary is TRAIN's --max-vocab most frequent words; --valid scores each epoch (default: "
    "the last 10% of TRAIN), --test is scored once with the best weights. The defaults are Zaremba et al.'s "
    "small Penn Treebank model.",
    "examples:\n"
    "  lstmkit wordlm train ptb.train.txt --valid ptb.valid.txt --test ptb.test.txt --out runs/ptb\n"
    "  lstmkit wordlm train ptb.train.txt --valid ptb.valid.txt --hidden-size 650 --embed-size 650 \\\n"
    "      --dropout 0.5 --epochs 39 --decay-after 6 --lr-decay 0.8 --bptt 35 --out runs/ptb-medium",
)
SAMPLE_TEXTS = ("generate text from a trained model", "Continue a prompt with a trained model.", "")
EVAL_TEXTS = ("perplexity of a trained model on a file", "Score a UTF-8 text file with a trained model.", "")


def add_commands(parser: argparse.ArgumentParser) -> None:
    """`lstmkit wordlm train|eval|sample`."""
    actions = actions_of(parser)
    groups = add_train_command(actions, WordLM, train, TRAIN_TEXTS)
    data = groups["data"]
    data.add_argument("text", type=Path, metavar="TRAIN", help="the training text, UTF-8")
    data.add_argument(
        "--valid", type=Path, metavar="FILE", help="validation text (default: last 10%% of TRAIN)"
    )
    data.add_argument("--test", type=Path, metavar="FILE", help="test text, scored once after training")

    p = add_command(actions, "eval", WordLM, ".load(DIR).evaluate(FILE)", evaluate, EVAL_TEXTS)
    p.add_argument("text", type=Path, metavar="FILE", help="UTF-8 text to score")
    p.add_argument("--json", action="store_true", help='print {"perplexity": ...} as JSON')

    p = add_command(actions, "sample", WordLM, ".load(DIR).sample(PROMPT)", sample, SAMPLE_TEXTS)
    p.add_argument("--prompt", default="", help="words to start from (default: a new line)")
    p.add_argument("--length", type=POSITIVE_INT.parse, default=50, help="words to generate (default: 50)")
    p.add_argument(
        "--temperature",
        metavar="T",
        type=NON_NEGATIVE.parse,
        default=1.0,
        help="below 1: safer, above 1: wilder, 0: greedy (default: 1)",
    )
    p.add_argument(
        "--top-k",
        metavar="K",
        type=NATURAL.parse,
        default=0,
        help="draw from the K likeliest words only; 0: all (default: 0)",
    )
    p.add_argument(
        "--seed", metavar="N", type=SEED.parse, default=0, help="random seed for sampling (default: 0)"
    )


register(
    Task(
        "wordlm",
        "word-level language model: train, eval, sample",
        add_commands,
        WordLM,
        __doc__,
        reads="words, split as the model's --tokenizer splits them; one step per word (words the model "
        "does not know are shown greyed and read as <unk>)",
    )
)
