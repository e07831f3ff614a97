"""`lstmkit charlm`, `lstmkit.CharLM`: a character-level language model (train, sample, eval).

Embedding -> stacked LSTM -> linear -> softmax over the characters; trained on the first 90% of the file
with truncated BPTT (the state is carried from one window to the next, gradients stop at the window),
validated on the last 10% (at most 500,000 characters; the rest trains). Loss in nats per character;
bits per character = nats / ln 2. The file is read in chunks into one byte per character, so a large
corpus takes about its own size in memory. Under torchrun, each process trains its share of the streams.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lstmkit.config import NON_NEGATIVE, POSITIVE_INT, RATE, SEED, option, with_defaults
from lstmkit.data.text import MAX_VALIDATION, BPTTBatcher, CharVocab, read_corpus, split_train_val
from lstmkit.errors import InputError
from lstmkit.models.charlm import CharNetwork
from lstmkit.plots.record import GateRecord, shown
from lstmkit.tasks.estimator import Estimator
from lstmkit.tasks.registry import Task, register
from lstmkit.tasks.runner import Outcome, actions_of, add_command, add_train_command
from lstmkit.train import distributed
from lstmkit.train.loop import TrainConfig
from lstmkit.train.metrics import format_loss


@with_defaults(epochs=50, minutes=10.0, lr=2e-3, schedule="cosine", patience=0, eval_every=500)
class CharLMConfig(TrainConfig):
    """The character model's size and how its text is cut into training windows."""

    hidden_size: int = option(256, "units per LSTM layer", POSITIVE_INT)
    num_layers: int = option(2, "stacked LSTM layers", POSITIVE_INT, flag="--layers")
    embed_size: int = option(64, "character embedding size", POSITIVE_INT)
    dropout: float = option(0.1, "dropout between LSTM layers", RATE)
    seq_len: int = option(100, "truncated-BPTT window in characters", POSITIVE_INT)
    batch_size: int = option(32, "text streams trained side by side", POSITIVE_INT)


class CharLMJob:
    """Truncated BPTT over ``batch_size`` contiguous streams of the training text (ids of any integer
    dtype); the state carried from window to window is saved in checkpoints, for an exact --resume."""

    def __init__(self, model: CharNetwork, train_ids, val_ids, batch_size: int, seq_len: int) -> None:
        self.model, self.val_ids = model, val_ids
        self.batcher = BPTTBatcher(train_ids, batch_size, seq_len)
        self.eval_batch, self.seq_len = max(batch_size, 64), seq_len
        self.state = None

    def batches(self, epoch: int) -> list:
        self.state = None  # each pass over the text starts from a zero state
        return list(self.batcher)

    def loss(self, batch) -> tuple[torch.Tensor, int]:
        inputs, targets = batch  # (B, T) each; under torchrun, this rank's streams
        logits, state = self.model(inputs.long(), self.state)  # (B, T, V)
        self.state = tuple(s.detach() for s in state)  # carry the values, cut the gradient path
        return F.cross_entropy(logits.flatten(0, 1), targets.long().flatten()), targets.numel()

    def validate(self) -> float:
        return mean_loss(self.model, self.val_ids, self.eval_batch, self.seq_len)

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {} if self.state is None else {"h": self.state[0], "c": self.state[1]}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.state = (tensors["h"], tensors["c"])  # (L, B, H) each


@torch.no_grad()
def mean_loss(model: CharNetwork, ids: torch.Tensor, batch_size: int, seq_len: int) -> float:
    """Mean next-character cross-entropy of ``ids`` in nats/char, the state carried along each stream;
    under torchrun each rank scores its share of the streams and the sums are added up."""
    was_training = model.training
    model.eval()
    batch_size = max(1, min(batch_size, (len(ids) - 1) // seq_len))
    total, count, state = 0.0, 0, None
    for inputs, targets in BPTTBatcher(ids, batch_size, seq_len):  # (B, T) each
        inputs, targets = distributed.items(inputs), distributed.items(targets)
        if not len(inputs):
            break  # more ranks than streams
        logits, state = model(inputs.long(), state)  # (B, T, V)
        total += F.cross_entropy(logits.flatten(0, 1), targets.long().flatten(), reduction="sum").item()
        count += targets.numel()
    model.train(was_training)
    total, count = distributed.sum_over_ranks([total, count])
    return total / count


def corpus(text: str | Path, vocab: CharVocab | None = None) -> tuple[CharVocab, torch.Tensor, str]:
    """TEXT as ids (N,), with the vocabulary (built from it unless given) and a name for messages: a Path,
    or a string naming an existing file, is read (UTF-8, in chunks); any other string is the text."""
    if not isinstance(text, (str, Path)):
        raise InputError(f"expected a text or the path of a text file, got {type(text).__name__}")
    one_line = isinstance(text, str) and "\n" not in text
    if isinstance(text, Path) or (one_line and (Path(text).is_file() or looks_like_a_path(text))):
        return *read_corpus(text, vocab), str(text)
    vocab = vocab or CharVocab.from_text(text)
    return vocab, vocab.encode(text), "the text"


def looks_like_a_path(text: str) -> bool:
    """A one-line string that names a file rather than being the text: "corpus.txt", "data/input"."""
    return (
        len(text) < 1000 and " " not in text.strip() and ("/" in text or Path(text).suffix in (".txt", ".md"))
    )


class CharLM(Estimator):
    """A character-level language model: embedding -> stacked LSTM -> softmax over the characters.

        lm = lstmkit.CharLM(hidden_size=128).fit("input.txt", minutes=5)
        lm.sample("ROMEO:", length=200)      # a continuation
        lm.evaluate("other.txt")             # {"loss": nats/char, "bpc": bits/char, ...}
        lm.gates("To be, or not to be.")     # the gate record, for lstmkit.plots or the HTML viewer

    ``fit`` trains on the first 90% of the text (truncated BPTT, the state carried between windows) and
    validates on the last 10%; ``initialize`` does fit's first half (vocabulary, split, untrained network)
    for a look at the model before training.
    """

    task = "charlm"
    Config = CharLMConfig
    loss_name = "cross-entropy (nats/char)"
    unit = "chars"

    def initialize(self, text: str | Path, verbose: bool = False) -> CharLM:
        """Build the vocabulary of TEXT (a path, or the text itself), split it, and make an untrained
        network from the seed; ``fit()`` then trains it."""
        cfg = self.config
        self.vocab, ids, name = corpus(text)
        min_chars = 10 * (cfg.batch_size * cfg.seq_len + 1)
        if len(ids) < min_chars:
            raise InputError(
                f"{name}: {len(ids)} characters are too few for --batch-size {cfg.batch_size} x --seq-len "
                f"{cfg.seq_len} (need at least {min_chars}, 10% of them for validation); use a longer text "
                "or smaller --batch-size/--seq-len"
            )
        self.train_ids, self.val_ids = split_train_val(ids)
        torch.manual_seed(cfg.seed)
        self.network = self._build_network().eval()
        self.training_state, self.metrics = None, None
        if verbose:
            print(
                f"charlm: {name}: {len(ids):,} characters, {len(self.vocab) - 1} distinct; training on the "
                f"first {len(self.train_ids):,}, validating on the last {len(self.val_ids):,}.\n"
                f"Model: embedding {cfg.embed_size} -> LSTM {cfg.num_layers} x {cfg.hidden_size} -> "
                f"{len(self.vocab)} characters, {self.parameter_count():,} parameters. Uniform guessing "
                f"scores {format_loss(math.log(len(self.vocab)))}."
            )
        return self

    def fit(
        self,
        text: str | Path | None = None,
        *,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        verbose: bool = True,
        **training,
    ) -> CharLM:
        """Train on TEXT (a path, or the text itself; None: the text given to ``initialize``). Training
        settings (minutes=, epochs=, lr=, seed=, ...) may be given here; CHECKPOINT_DIR keeps a resumable
        checkpoint (``resume=True`` continues from it)."""
        self._configure(training, checkpoint_dir, resume)
        if text is not None:
            self.initialize(text, verbose)
        elif getattr(self, "train_ids", None) is None:
            raise InputError("fit() needs a text, or initialize(text) before it")
        cfg = self.config
        network = self.network.train()
        job = CharLMJob(network, self.train_ids, self.val_ids, cfg.batch_size, cfg.seq_len)
        self._finish_fit(network, self._trainer(job, checkpoint_dir, verbose).fit(resume))
        return self

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self._check_fitted().parameters())

    def evaluate(self, text: str | Path | None = None) -> dict:
        """The loss in nats and bits per character: of the validation part (TEXT None: the metrics of
        metrics.json), or of TEXT (a path, or the text itself)."""
        network, cfg = self._check_fitted(), self.config
        if text is None:
            if getattr(self, "val_ids", None) is None:
                raise InputError("evaluate() needs a text: this model was loaded, not fitted here")
            loss = mean_loss(network, self.val_ids, max(cfg.batch_size, 64), cfg.seq_len)
            state = self.training_state
            seconds = state.elapsed if state is not None else 0.0
            trained = state.step * cfg.batch_size * cfg.seq_len if state is not None else 0
            self._record(
                {
                    "val_loss": loss,
                    "val_bpc": loss / math.log(2),
                    "train_chars": len(self.train_ids),
                    "val_chars": len(self.val_ids),
                    "chars_per_second": round(trained / max(seconds, 1e-9)),
                    "parameters": self.parameter_count(),
                }
            )
            return self.metrics
        _, ids, name = corpus(text, self.vocab)  # ids 0 for characters the model never saw
        if len(ids) < 2:
            raise InputError(f"{name}: needs at least 2 characters to score a prediction")
        loss = mean_loss(network, ids, 64, cfg.seq_len)
        return {
            "loss": loss,
            "bpc": loss / math.log(2),
            "chars": len(ids),
            "unseen_chars": int((ids == 0).sum()),
        }

    def sample(self, prompt: str = "\n", length: int = 500, temperature: float = 0.8, seed: int = 0) -> str:
        """LENGTH characters that continue PROMPT (0 temperature: always the likeliest; below 1 safer,
        above 1 wilder). Characters the model never saw read as its unknown character."""
        if not prompt:
            raise InputError("the prompt is empty; give at least one character to start from")
        generator = torch.Generator().manual_seed(seed)
        ids = self._check_fitted().sample(self.vocab.encode(prompt), length, temperature, generator)
        return self.vocab.decode(ids)

    @torch.no_grad()
    def predict(self, text: str) -> np.ndarray:
        """After each character of TEXT, the probabilities of the next one: (len(TEXT), V), the columns in
        the order of ``self.vocab.chars`` (column 0: a character never seen)."""
        logits, _ = self._check_fitted()(self.vocab.encode(text).view(1, -1))  # (1, T, V)
        return torch.softmax(logits[0], dim=-1).numpy()

    @torch.no_grad()
    def gates(self, text: str, title: str | None = None) -> GateRecord:
        """Every gate and state of every layer while the model reads TEXT, one step per character, with
        its guesses of the next character."""
        network = self._check_fitted().eval()
        if not text:
            raise InputError("the text is empty; give the text the model should read")
        ids = self.vocab.encode(text)  # (T,)
        logits, _state, trace = network(ids.view(1, -1), return_trace=True)  # (1, T, V); (L, 1, T, H)
        probs = torch.softmax(logits[0], dim=-1)  # (T, V)
        top = probs.topk(min(3, probs.shape[1]), dim=-1)
        chars = self.vocab.chars
        notes = [
            "next: " + ", ".join(f"{shown(chars[i])} {p:.0%}" for p, i in zip(ps.tolist(), ix.tolist()))
            for ps, ix in zip(top.values, top.indices)
        ]
        summary = f"{len(text)} characters"
        if len(ids) > 1:
            loss = F.cross_entropy(logits[0, :-1], ids[1:]).item()
            summary += f"; predicting each next one costs {loss:.3f} nats ({loss / math.log(2):.3f} bits)"
        return GateRecord.from_trace(
            trace.map(lambda t: t[:, 0]),
            False,
            task=self.task,
            title=title or "character model",
            tokens=list(text),
            token_kind="character",
            summary=summary,
            notes=notes,
            unknown=(ids == 0).nonzero().view(-1).tolist(),
        )

    def _describe_fitted(self) -> str:
        return f"{len(self.vocab) - 1} characters, {self.parameter_count():,} parameters"

    def _fitted_state(self) -> dict:
        return {"chars": self.vocab.chars[1:]}

    def _restore_fitted(self, state: dict) -> None:
        self.vocab, self.train_ids, self.val_ids = CharVocab(state["chars"]), None, None

    def _build_network(self) -> CharNetwork:
        cfg = self.config
        return CharNetwork(len(self.vocab), cfg.embed_size, cfg.hidden_size, cfg.num_layers, cfg.dropout)


# ---- the command line ------------------------------------------------------------------------------------
def train(lm: CharLM, args: argparse.Namespace, out_dir: Path) -> Outcome:
    lm.fit(args.text, checkpoint_dir=out_dir, resume=args.resume)
    metrics = lm.evaluate()
    sample = lm.sample("\n", 300, 0.8, seed=lm.config.seed)
    summary = (
        f"Validation loss {format_loss(metrics['val_loss'])} (best weights, step "
        f"{lm.training_state.best_step}).\nA sample at temperature 0.8:\n{sample}\n"
    )
    return Outcome(summary, f"Sample more with: lstmkit charlm sample {out_dir} --prompt 'ROMEO:'")


def sample(args: argparse.Namespace) -> None:
    lm = CharLM.load(args.model_dir)
    unknown = sorted({c for c in args.prompt if c not in lm.vocab.char_to_id})
    if unknown:
        print(
            f"note: the model never saw the prompt's characters {''.join(unknown)!r}; they read as unknown",
            file=sys.stderr,
        )
    print(args.prompt + lm.sample(args.prompt, args.length, args.temperature, args.seed))


def evaluate(args: argparse.Namespace) -> None:
    scores = CharLM.load(args.model_dir).evaluate(args.text)
    print(
        f"{args.text}: {scores['chars']:,} characters ({scores['unseen_chars']:,} unseen in training): "
        f"loss {format_loss(scores['loss'])}"
    )


TRAIN_TEXTS = (
    "train on a UTF-8 text file",
    "Train a character LSTM on TEXT (UTF-8); the last 10% of the file (at most "
    f"{MAX_VALIDATION:,} characters) is for validation.",
    "example:\n  lstmkit charlm train shakespeare.txt --out runs/shakespeare --minutes 20",
)
SAMPLE_TEXTS = ("generate text from a trained model", "Continue a prompt with a trained model.", "")
EVAL_TEXTS = ("loss of a trained model on a text file", "Score a UTF-8 text file with a trained model.", "")


def add_commands(parser: argparse.ArgumentParser) -> None:
    """`lstmkit charlm train|sample|eval`."""
    actions = actions_of(parser)
    groups = add_train_command(actions, CharLM, train, TRAIN_TEXTS)
    groups["data"].add_argument("text", type=Path, metavar="TEXT", help="the training text, UTF-8")

    p = add_command(actions, "sample", CharLM, ".load(DIR).sample(PROMPT)", sample, SAMPLE_TEXTS)
    p.add_argument("--prompt", default="\n", help="text to start from (default: a line break)")
    p.add_argument(
        "--length", type=POSITIVE_INT.parse, default=500, help="characters to generate (default: 500)"
    )
    p.add_argument(
        "--temperature",
        metavar="T",
        type=NON_NEGATIVE.parse,
        default=0.8,
        help="below 1: safer, above 1: wilder, 0: greedy (default: 0.8)",
    )
    p.add_argument(
        "--seed", metavar="N", type=SEED.parse, default=0, help="random seed for sampling (default: 0)"
    )

    p = add_command(actions, "eval", CharLM, ".load(DIR).evaluate(TEXT)", evaluate, EVAL_TEXTS)
    p.add_argument("text", type=Path, metavar="TEXT", help="UTF-8 text to score")


INSPECT_READS = (
    "the text itself; one step per character (characters the model never saw are shown greyed; "
    "the model reads them as its unknown character)"
)


register(
    Task(
        "charlm",
        "character-level language model: train, sample, eval",
        add_commands,
        CharLM,
        __doc__,
        reads=INSPECT_READS,
    )
)
