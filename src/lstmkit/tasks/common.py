"""What every task's command line shares: the training options, the output directory, the final report."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from torch import nn

from lstmkit import __version__
from lstmkit.errors import InputError
from lstmkit.files import write_atomic
from lstmkit.train import distributed
from lstmkit.train.checkpoint import save_model
from lstmkit.train.loop import LoopState, TrainConfig

METRICS_FILE = "metrics.json"
LOSS_CURVE_FILE = "loss_curve.png"


def number(text: str) -> float:
    """The number TEXT spells, or NaN where it spells none (then every range check below fails)."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def positive_float(text: str) -> float:
    value = number(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def finite_float(text: str) -> float:
    value = number(text)
    if not abs(value) < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = number(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def seed_number(text: str) -> int:
    if not (text.isdigit() and int(text) < 2**32):
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {2**32 - 1}, got {text!r}")
    return int(text)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def natural(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return int(text)


# (flag, TrainConfig field, argparse type, help); the help shows the task's default
TRAINING_OPTIONS = [
    ("--minutes", "minutes", positive_float, "wall-clock budget for training in minutes"),
    ("--epochs", "epochs", positive_int, "passes over the training data, at most"),
    ("--lr", "lr", positive_float, "learning rate (AdamW)"),
    ("--weight-decay", "weight_decay", non_negative_float, "AdamW's weight decay"),
    ("--clip", "grad_clip", non_negative_float, "largest gradient norm; 0: no clipping"),
    ("--patience", "patience", natural, "validations without improvement before stopping; 0: never"),
    ("--eval-every", "eval_every", natural, "optimizer steps between validations; 0: once per epoch"),
    ("--checkpoint-every", "checkpoint_every", positive_float, "minutes between checkpoints (0.5: 30 s)"),
    ("--seed", "seed", seed_number, "random seed: the same seed gives the same run"),
]


def add_training_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """--out, --resume, --schedule and the TRAINING_OPTIONS, with the task's defaults."""
    group = parser.add_argument_group("training")
    group.add_argument(
        "--out", metavar="DIR", type=Path, required=True, help="directory for the model and report"
    )
    group.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.safetensors")
    for flag, name, kind, text in TRAINING_OPTIONS:
        group.add_argument(
            flag, dest=name, type=kind, default=getattr(defaults, name), help=f"{text} (default: %(default)s)"
        )
    group.add_argument(
        "--schedule",
        choices=["plateau", "cosine", "constant"],
        default=defaults.schedule,
        help="halve the rate after 2 flat validations, anneal it to 0, or keep it (default: %(default)s)",
    )


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the output directory if needed; InputError if it cannot be one."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a directory; choose another output directory (--out)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output directory {out_dir}: {error.strerror}") from None
    return out_dir


def write_report(
    out_dir: Path,
    task: str,
    model: nn.Module,
    model_config: dict[str, Any],
    metrics: dict[str, Any],
    state: LoopState,
    config: TrainConfig,
    started: float,
    loss_name: str = "loss",
) -> dict[str, Any]:
    """Write model.safetensors, config.json, metrics.json and the loss-curve PNG (rank 0 alone, under
    torchrun); return the metrics."""
    run = {
        "task": task,
        "seed": config.seed,
        "world_size": distributed.world_size(),
        "wall_time_s": round(time.monotonic() - started, 1),
        "lstmkit_version": __version__,
        "training": {
            "steps": state.step,
            "best_step": state.best_step,
            "stopped": state.stopped,
            "config": asdict(config),
        },
    }
    clash = sorted(set(metrics) & set(run))
    if clash:
        raise ValueError(f"task metrics may not use the report's own keys: {', '.join(clash)}")
    record = {**metrics, **run}
    if not distributed.is_main():
        return record
    from lstmkit.inspect.plots import plot_loss_curve  # matplotlib only when a report is written

    save_model(out_dir, model, {"task": task, "lstmkit_version": __version__, **model_config})
    write_atomic(out_dir / METRICS_FILE, json.dumps(record, indent=2) + "\n")
    plot_loss_curve(state.history, out_dir / LOSS_CURVE_FILE, f"lstmkit {task}: training curve", loss_name)
    return record
