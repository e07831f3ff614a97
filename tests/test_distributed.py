"""Data-parallel training on two CPU processes (gloo): one step takes the gradient and the update of one
process on the whole batch, and every task's `train` follows the loss curve of a one-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import DATA
from safetensors.torch import load_file, save_file
from torch import nn

import lstmkit
from lstmkit import datasets
from lstmkit.cli import main
from lstmkit.data.text import load_bundled_text
from lstmkit.train import distributed
from lstmkit.train.checkpoint import STATE_FILE, load_tensors
from lstmkit.train.loop import TrainConfig, Trainer

ONE_STEP = TrainConfig(epochs=1, lr=0.05, grad_clip=0.0, patience=0, schedule="constant")


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.head = lstmkit.LSTM(2, 8, batch_first=True), nn.Linear(8, 1)

    def forward(self, x):  # (B, T, 2) -> (B,)
        out, _ = self.lstm(x)  # (B, T, 8)
        return self.head(out[:, -1]).squeeze(-1)


class OneBatchJob:
    """Predict the sum of a sequence; one batch of 15 items, so that two ranks hold 8 and 7."""

    def __init__(self):
        gen = torch.Generator().manual_seed(5)
        self.x = torch.randn(15, 6, 2, generator=gen)  # (N, T, 2)
        self.y = self.x.sum(dim=(1, 2))  # (N,)
        torch.manual_seed(0)
        self.model = Regressor()

    def batches(self, epoch):
        return [torch.arange(15)]

    def loss(self, batch):
        return torch.mean((self.model(self.x[batch]) - self.y[batch]) ** 2), len(batch)

    def validate(self):
        return 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parameters_and_gradients(model: nn.Module) -> dict[str, torch.Tensor]:
    named = dict(model.named_parameters())
    return {
        **{f"param.{n}": p.detach() for n, p in named.items()},
        **{f"grad.{n}": p.grad for n, p in named.items()},
    }


def _one_step(rank: int, port: int, out: str) -> None:
    """A torchrun-like rank: the environment torchrun sets, then one training step."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    distributed.init()
    try:
        job = OneBatchJob()
        Trainer(job, ONE_STEP, Path(out) / "run").fit()
        save_file(parameters_and_gradients(job.model), f"{out}/rank{rank}.safetensors")
    finally:
        distributed.finish()


def test_one_step_on_two_processes_is_one_step_on_the_whole_batch(tmp_path):
    mp.spawn(_one_step, args=(free_port(), str(tmp_path)), nprocs=2)
    single = OneBatchJob()
    before = {n: p.detach().clone() for n, p in single.model.named_parameters()}
    Trainer(single, ONE_STEP, tmp_path / "single").fit()
    expected = parameters_and_gradients(single.model)
    for rank in (0, 1):
        got = load_file(tmp_path / f"rank{rank}.safetensors")
        for name, value in expected.items():
            torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-7)
    # the step moved every weight, and a rank alone (its 8 items) would have had another gradient
    assert all(not torch.equal(before[n], p) for n, p in single.model.named_parameters())
    shard = OneBatchJob()
    shard.loss(torch.arange(0, 15, 2))[0].backward()
    assert not torch.allclose(shard.model.head.weight.grad, expected["grad.head.weight"], rtol=1e-3)
    _, meta = load_tensors(tmp_path / "run" / STATE_FILE)  # rank 0's checkpoint: both ranks' random states
    assert meta["world_size"] == 2 and len(meta["python_random"]) == 2


def history(out_dir: Path) -> dict[str, list]:
    return load_tensors(out_dir / STATE_FILE)[1]["loop"]["history"]


def assert_same_curve(one: Path, two: Path) -> None:
    a, b = history(one), history(two)
    assert a["step"] == b["step"] and a["val_step"] == b["val_step"]
    torch.testing.assert_close(
        torch.tensor(b["train_loss"]), torch.tensor(a["train_loss"]), rtol=2e-4, atol=0
    )
    torch.testing.assert_close(torch.tensor(b["val_loss"]), torch.tensor(a["val_loss"]), rtol=2e-4, atol=0)


def test_charlm_under_torchrun_learns_and_follows_the_one_process_curve(tmp_path):
    corpus = tmp_path / "slice.txt"
    corpus.write_text(load_bundled_text()[:40_000])  # tinyshakespeare, bundled with the package
    small = ["--hidden-size", "32", "--layers", "1", "--embed-size", "8", "--seq-len", "32"]
    args = ["charlm", "train", str(corpus), *small, "--batch-size", "9", "--dropout", "0", "--epochs", "1"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [*torchrun, "-m", "lstmkit", *args, "--out", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("Wrote ") == 1  # rank 0 alone reports
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert_same_curve(tmp_path / "one", tmp_path / "two")
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["training"]["steps"] == 125  # 35,999 // 9 // 32 + 1
    losses = history(tmp_path / "two")["train_loss"]
    assert sum(losses[-10:]) / 10 < losses[0] - 0.8  # it learns: from 4.1 nats/char to about 3


def task_commands() -> dict[str, list[str]]:
    """A short `train` of each task but charlm, without dropout (whose masks differ between ranks)."""
    pos, neg = (DATA / "reviews" / f"reviews.{s}" for s in ("pos", "neg"))  # 150 snippets each, cp1252
    ecg = DATA / "ucr" / "BEATS_TRAIN.txt"  # 40 series of 96 values, UCR format
    training = ["--epochs", "3", "--patience", "0", "--schedule", "constant", "--seed", "1"]
    return {
        "forecast": ["forecast", "train", str(datasets.path("airline-passengers.csv"))]
        + ["--target", "Passengers", "--horizon", "1", "--test-size", "24", "--batch-size", "7", *training],
        "sentiment": [
            "sentiment",
            "train",
            "--pos",
            str(pos),
            "--neg",
            str(neg),
        ]
        + ["--encoding", "cp1252", "--hidden-size", "8", "--embed-size", "8", "--dropout", "0", *training],
        "classify": ["classify", "train", str(ecg), "--hidden-size", "8", "--dropout", "0"]
        + ["--batch-size", "5", *training],
    }


def _tasks(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        for task, argv in task_commands().items():
            assert main([*argv, "--out", f"{out}/{task}-two"]) == 0, task
    finally:
        dist.destroy_process_group()


def test_every_task_trains_on_two_processes_as_on_one(tmp_path):
    mp.spawn(_tasks, args=(free_port(), str(tmp_path)), nprocs=2)
    for task, argv in task_commands().items():
        assert main([*argv, "--out", str(tmp_path / f"{task}-one")]) == 0
        assert_same_curve(tmp_path / f"{task}-one", tmp_path / f"{task}-two")
        assert json.loads((tmp_path / f"{task}-two" / "metrics.json").read_text())["world_size"] == 2
