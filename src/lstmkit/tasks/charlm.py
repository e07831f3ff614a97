"""`lstmkit charlm`: a character-level language model. train TEXT, sample DIR, eval DIR TEXT.

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
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lstmkit.data.text import MAX_VALIDATION, BPTTBatcher, CharVocab, read_corpus, split_train_val
from lstmkit.errors import InputError
from lstmkit.models.charlm import CharLM
from lstmkit.tasks.common import (
    add_training_arguments,
    non_negative_float,
    positive_int,
    prepare_out_dir,
    seed_number,
    train_config,
    write_report,
)
from lstmkit.train import distributed
from lstmkit.train.checkpoint import load_model, load_weights
from lstmkit.train.loop import TrainConfig, Trainer

TASK = "charlm"
LOSS_NAME = "cross-entropy (nats/char)"
DEFAULTS = TrainConfig(epochs=50, minutes=10.0, lr=2e-3, schedule="cosine", patience=0, eval_every=500)


class CharLMJob:
    """Truncated BPTT over ``batch_size`` contiguous streams of the training text (ids of any integer
    dtype); the state carried from window to window is saved in checkpoints, for an exact --resume."""

    def __init__(self, model: CharLM, train_ids, val_ids, batch_size: int, seq_len: int) -> None:
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
def mean_loss(model: CharLM, ids: torch.Tensor, batch_size: int, seq_len: int) -> float:
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


def format_loss(nats: float) -> str:
    return f"{nats:.3f} nats/char = {nats / math.log(2):.3f} bits/char"


def model_config(
    vocab: CharVocab, embed_size: int, hidden_size: int, num_layers: int, dropout: float, seq_len: int
):
    """What config.json records to rebuild the model (``build_model``) and score text with it."""
    return {
        "chars": vocab.chars[1:],
        "embed_size": embed_size,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "dropout": dropout,
        "seq_len": seq_len,
    }


def build_model(config: dict) -> CharLM:
    return CharLM(
        len(config["chars"]) + 1,
        config["embed_size"],
        config["hidden_size"],
        config["num_layers"],
        config["dropout"],
    )


def load(model_dir: Path) -> tuple[CharLM, CharVocab, dict]:
    config, tensors = load_model(model_dir, TASK)
    model = load_weights(build_model(config), tensors, model_dir)
    return model.eval(), CharVocab(config["chars"]), config


def train(args: argparse.Namespace) -> None:
    started = time.monotonic()
    out_dir = prepare_out_dir(args.out)
    vocab, ids = read_corpus(args.text)  # (N,) uint8 ids for up to 256 distinct characters
    min_chars = 10 * (args.batch_size * args.seq_len + 1)
    if len(ids) < min_chars:
        raise InputError(
            f"{args.text}: {len(ids)} characters are too few for --batch-size {args.batch_size} x --seq-len "
            f"{args.seq_len} (need at least {min_chars}, 10% of them for validation); use a longer text or "
            "smaller --batch-size/--seq-len"
        )
    train_ids, val_ids = split_train_val(ids)
    config = train_config(args)
    torch.manual_seed(config.seed)
    described = model_config(
        vocab, args.embed_size, args.hidden_size, args.layers, args.dropout, args.seq_len
    )
    model = build_model(described)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"charlm: {args.text}: {len(ids):,} characters, {len(vocab) - 1} distinct; training on the first "
        f"{len(train_ids):,}, validating on the last {len(val_ids):,}.\n"
        f"Model: embedding {args.embed_size} -> LSTM {args.layers} x {args.hidden_size} -> {len(vocab)} "
        f"characters, {params:,} parameters. Uniform guessing scores {format_loss(math.log(len(vocab)))}."
    )
    job = CharLMJob(model, train_ids, val_ids, args.batch_size, args.seq_len)
    state = Trainer(job, config, out_dir, unit="chars").fit(resume=args.resume)
    val_loss = job.validate()
    metrics = {
        "val_loss": val_loss,
        "val_bpc": val_loss / math.log(2),
        "train_chars": len(train_ids),
        "val_chars": len(val_ids),
        "chars_per_second": round(state.step * args.batch_size * args.seq_len / max(state.elapsed, 1e-9)),
        "parameters": params,
    }
    write_report(out_dir, TASK, model, described, metrics, state, config, started, LOSS_NAME)
    sample_ids = model.sample(vocab.encode("\n"), 300, 0.8, torch.Generator().manual_seed(config.seed))
    print(
        f"Stopped: {state.stopped}. Validation loss {format_loss(val_loss)} "
        f"(best weights, step {state.best_step}).\n"
        f"A sample at temperature 0.8:\n{vocab.decode(sample_ids)}\n\n"
        f"Wrote {out_dir}/model.safetensors, config.json, metrics.json and loss_curve.png. "
        f"Sample more with: lstmkit charlm sample {out_dir} --prompt 'ROMEO:'"
    )


def sample(args: argparse.Namespace) -> None:
    model, vocab, _ = load(args.model_dir)
    unknown = sorted({c for c in args.prompt if c not in vocab.char_to_id})
    if unknown:
        print(
            f"note: the model never saw the prompt's characters {''.join(unknown)!r}; they read as unknown",
            file=sys.stderr,
        )
    generator = torch.Generator().manual_seed(args.seed)
    ids = model.sample(vocab.encode(args.prompt), args.length, args.temperature, generator)
    print(args.prompt + vocab.decode(ids))


def evaluate(args: argparse.Namespace) -> None:
    model, vocab, config = load(args.model_dir)
    _, ids = read_corpus(args.text, vocab)  # (N,) ids; 0 for characters the model never saw
    if len(ids) < 2:
        raise InputError(f"{args.text}: needs at least 2 characters to score a prediction")
    unknown = int((ids == 0).sum())
    loss = mean_loss(model, ids, 64, config["seq_len"])
    print(f"{args.text}: {len(ids):,} characters ({unknown:,} unseen in training): loss {format_loss(loss)}")


def dropout_rate(text: str) -> float:
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to below 1, got {text!r}")
    return value


def add_commands(commands) -> None:
    """Register `lstmkit charlm train|sample|eval`."""
    charlm = commands.add_parser(
        "charlm", help="character-level language model: train, sample, eval", description=__doc__
    )
    sub = charlm.add_subparsers(title="commands", dest="charlm_command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "train",
        help="train on a UTF-8 text file",
        description="Train a character LSTM on TEXT (UTF-8); the last 10%% of the file (at most "
        f"{MAX_VALIDATION:,} characters) is for validation.",
        epilog="example:\n  lstmkit charlm train shakespeare.txt --out runs/shakespeare --minutes 20",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("text", type=Path, metavar="TEXT", help="the training text, UTF-8")
    model = p.add_argument_group("model")
    model.add_argument("--hidden-size", type=positive_int, default=256, help="units per LSTM layer")
    model.add_argument("--layers", type=positive_int, default=2, help="stacked LSTM layers")
    model.add_argument("--embed-size", type=positive_int, default=64, help="character embedding size")
    model.add_argument("--dropout", type=dropout_rate, default=0.1, help="dropout between LSTM layers")
    model.add_argument(
        "--seq-len", type=positive_int, default=100, help="truncated-BPTT window in characters"
    )
    model.add_argument(
        "--batch-size", type=positive_int, default=32, help="text streams trained side by side"
    )
    add_training_arguments(p, DEFAULTS)
    p.set_defaults(run=train)

    p = sub.add_parser(
        "sample",
        help="generate text from a trained model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model_dir", type=Path, metavar="DIR", help="the --out directory of 'charlm train'")
    p.add_argument("--prompt", default="\n", help="text to start from")
    p.add_argument("--length", type=positive_int, default=500, help="characters to generate")
    p.add_argument(
        "--temperature",
        type=non_negative_float,
        default=0.8,
        help="below 1: safer, above 1: wilder, 0: greedy",
    )
    p.add_argument("--seed", type=seed_number, default=0, help="random seed for sampling")
    p.set_defaults(run=sample)

    p = sub.add_parser(
        "eval",
        help="loss of a trained model on a text file",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model_dir", type=Path, metavar="DIR", help="the --out directory of 'charlm train'")
    p.add_argument("text", type=Path, metavar="TEXT", help="UTF-8 text to score")
    p.set_defaults(run=evaluate)
