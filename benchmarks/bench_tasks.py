"""Is the training loop the bottleneck? Each task's training throughput against bare LSTM forward+backward.

    python benchmarks/bench_tasks.py                 # every task, 3 rounds of about 40 s of training
    python benchmarks/bench_tasks.py --tasks charlm --seconds 20 --repeats 5

Each task's real `train` command runs while every training-mode call of lstmkit.LSTM is recorded (input
shape, lengths, and the time it started). The time from one such call to the next is one whole training
step of the task: data pipeline, embedding and head, loss, backward, optimizer, progress bar, checkpoint
checks. Then the same LSTM runs bare, forward and backward on random inputs of the recorded shapes. The
ratio task time / bare time shows what the task adds around the LSTM (the issue's target: at most 1.2).
The machine's speed drifts between the two halves of a round, so each task runs several rounds and the
median ratio is reported.
Steps next to a validation or a checkpoint are left out of both sides. Sentiment and classify train one
network (`--members 1`): an ensemble trains its members one after another with the same steps.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch

import lstmkit
from lstmkit.cli import main as lstmkit_main

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def task_commands(seconds: float, out: Path) -> dict[str, list[str]]:
    minutes = f"{seconds / 60:.4f}"
    common = ["--minutes", minutes, "--patience", "0"]
    return {
        "charlm": [
            "charlm", "train", str(DATA / "tinyshakespeare/input.txt"), "--out", str(out / "charlm"), *common,
        ],
        "forecast": [
            "forecast", "train", str(DATA / "beijing-pollution/pollution.csv"), "--target", "pm2.5",
            "--horizon", "24", "--out", str(out / "forecast"), *common,
        ],
        "sentiment": [
            "sentiment", "train", "--pos", str(DATA / "rt-polarity/rt-polarity.pos"),
            "--neg", str(DATA / "rt-polarity/rt-polarity.neg"), "--encoding", "cp1252",
            "--out", str(out / "sentiment"), "--members", "1", *common,
        ],
        "classify": [
            "classify", "train", str(DATA / "ucr-ecg200/ECG200_TRAIN.txt"),
            "--out", str(out / "classify"), "--members", "1", *common,
        ],
    }  # fmt: skip


class StepRecorder:
    """Wraps lstmkit.LSTM.forward to log training-mode calls; any other call breaks the chain of steps."""

    def __init__(self) -> None:
        self.calls: list[tuple | None] = []
        self.original = lstmkit.LSTM.forward

    def __enter__(self):
        recorder = self

        def forward(module, input, hx=None, **kwargs):
            if module.training and torch.is_grad_enabled():
                lengths = kwargs.get("lengths")
                lengths = None if lengths is None else torch.as_tensor(lengths).clone()
                recorder.calls.append(
                    (module, tuple(input.shape), lengths, input.requires_grad, time.perf_counter())
                )
            else:
                recorder.calls.append(None)  # validation or inference: not a training step
            return recorder.original(module, input, hx, **kwargs)

        lstmkit.LSTM.forward = forward
        return self

    def __exit__(self, *exc) -> None:
        lstmkit.LSTM.forward = self.original

    def steps(self) -> list[tuple]:
        """(module, shape, lengths, requires_grad, seconds from this call to the next training call)."""
        out = []
        for this, after in zip(self.calls, self.calls[1:]):
            if this is not None and after is not None and after[0] is this[0]:
                out.append((*this[:4], after[4] - this[4]))
        return out[2:]  # leave out warm-up


def bare_seconds(steps: list[tuple]) -> float:
    """Forward and backward of the same LSTM on random inputs of the recorded shapes."""
    total = 0.0
    bare = {}
    for module, shape, lengths, requires_grad, _ in steps:
        lstm = bare.setdefault(id(module), copy.deepcopy(module))
        x = torch.randn(shape, requires_grad=requires_grad)
        start = time.perf_counter()
        out, _ = lstm(x, lengths=lengths)
        out.sum().backward()
        total += time.perf_counter() - start
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="charlm,forecast,sentiment,classify", help="comma-separated tasks")
    parser.add_argument("--seconds", type=float, default=40.0, help="training budget per task and repeat")
    parser.add_argument(
        "--repeats", type=int, default=3, help="task-then-bare rounds per task (the median ratio is kept)"
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, backend {lstmkit.backends()[0]}")
    print(f"{'task':<10} {'steps':>6} {'task ms/step':>13} {'bare LSTM ms/step':>18} {'task / bare':>12}")
    for task in args.tasks.split(","):
        ratios = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp, StepRecorder() as recorder:
                status = lstmkit_main(task_commands(args.seconds, Path(tmp))[task])
            if status != 0:
                raise SystemExit(f"{task}: the train command failed with status {status}")
            steps = recorder.steps()
            if not steps:
                print(f"{task:<10} too few steps in {args.seconds:g} s to time; give more --seconds")
                break
            task_time = sum(step[-1] for step in steps)
            bare_time = bare_seconds(steps)
            n = len(steps)
            ratios.append(task_time / bare_time)
            print(
                f"{task:<10} {n:>6} {1e3 * task_time / n:>13.2f} {1e3 * bare_time / n:>18.2f} "
                f"{ratios[-1]:>12.2f}",
                flush=True,
            )
        if ratios:
            print(f"{task:<10} median task / bare over {len(ratios)} rounds: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
