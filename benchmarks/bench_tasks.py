"""Is the training loop the bottleneck? Each task's training throughput against bare LSTM forward+backward.

    python benchmarks/bench_tasks.py                 # every task, 3 rounds of about 40 s of training
    python benchmarks/bench_tasks.py --tasks charlm --seconds 20 --repeats 5

Each task's real `train` command runs while every training-mode call of lstmkit.LSTM is recorded. The
time from one such call to the next is one whole training step of the task: data pipeline, embedding and
head, loss, backward, optimizer, progress bar, checkpoint checks. Every BURST_EVERY-th call, before the
task's own LSTM runs, a copy of the LSTM runs bare, forward and backward on random inputs of that call's
shape, BURST times in a row (the first, which finds the caches cold, is not counted). Bare and task steps
are thus sampled side by side through the same run: the machine's speed drifts by up to 2x over a
minute, and timing the two one after the other would measure the drift. The step that follows a burst
is left out, and so are steps around a validation.

The ratio task time / bare time shows what the task adds around the LSTM (our target: at most
1.2); train_step / bare leaves out the loop around Trainer._train_step (progress bar, schedule, history).

The peer is the same model written in plain PyTorch: the task's network with each lstmkit.LSTM swapped
for a torch.nn.LSTM holding the same weights (lengths through pack_padded_sequence, as a torch user
writes it), the same head, loss, clipping and a fresh optimizer of the same kind and settings. At every
burst it takes one whole training step on the batch the task just trained on, and so does a copy of the
task's own network: peer / ours above 1 means lstmkit's training step is the faster. Both in float32
(`--precision fp32`; benchmarks/bench_precision.py compares bf16 with float32).
Each task runs several rounds and the median ratio is reported. Sentiment and classify train one network
(`--members 1`): an ensemble trains its members one after another with the same steps. Classify runs
without its convolutional branch (`--conv-filters 0`): the ratio is what the loop adds around the LSTM.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import statistics
import tempfile
import time
from pathlib import Path

import machine
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit
from lstmkit.cli import main as lstmkit_main
from lstmkit.train.loop import Trainer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def task_commands(seconds: float, out: Path) -> dict[str, list[str]]:
    minutes = f"{seconds / 60:.4f}"
    common = ["--minutes", minutes, "--patience", "0", "--precision", "fp32"]  # the peer is float32
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
            "--out", str(out / "classify"), "--members", "1", "--conv-filters", "0", *common,
        ],
    }  # fmt: skip


BURST_EVERY = 10  # task steps between bursts of bare calls
BURST = 4  # bare forward+backward calls per burst; the first is a warm-up


class TorchLSTM(torch.nn.Module):
    """torch.nn.LSTM with lstmkit.LSTM's weights, taking lengths= as a torch user would: packed."""

    def __init__(self, ours: lstmkit.LSTM):
        super().__init__()
        if ours.variant.describe():
            raise ValueError(f"torch.nn.LSTM has no {ours.variant.describe()}")
        self.batch_first, self.num_directions = ours.batch_first, ours.num_directions
        self.lstm = torch.nn.LSTM(
            ours.input_size, ours.hidden_size, ours.num_layers, ours.bias, ours.batch_first, ours.dropout,
            ours.bidirectional, ours.proj_size,
        )  # fmt: skip
        self.lstm.load_state_dict(ours.state_dict())

    def forward(self, x, hx=None, lengths=None):
        if lengths is None:
            return self.lstm(x, hx)
        packed = pack_padded_sequence(
            x, torch.as_tensor(lengths).cpu(), self.batch_first, enforce_sorted=False
        )
        out, state = self.lstm(packed, hx)
        steps = x.shape[1 if self.batch_first else 0]
        return pad_packed_sequence(out, self.batch_first, total_length=steps)[0], state


def plain_twin(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of MODEL with every lstmkit.LSTM replaced by TorchLSTM."""
    twin = copy.deepcopy(model)
    for module in list(twin.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, lstmkit.LSTM):
                setattr(module, child_name, TorchLSTM(child))
    return twin


def one_step(trainer: Trainer, model: torch.nn.Module, optimizer, batch) -> float:
    """Seconds of one training step of MODEL on BATCH as Trainer._train_step takes it: the job's loss,
    backward, the trainer's clipping, the optimizer."""
    job_model, trainer.job.model = trainer.job.model, model
    state = getattr(trainer.job, "state", None)  # a carried state (charlm) stays the task's
    try:
        start = time.perf_counter()
        model.train()
        loss, _ = trainer.job.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        if trainer.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(list(model.parameters()), trainer.config.grad_clip, foreach=True)
        optimizer.step()
        return time.perf_counter() - start
    finally:
        trainer.job.model = job_model
        if state is not None:
            trainer.job.state = state


class StepRecorder:
    """Wraps lstmkit.LSTM.forward: times the task's training steps, and the bare LSTM in bursts between them.

    ``task_times``: seconds from one training call to the next (validation or inference calls in between
    break the chain); ``step_times``: seconds of each Trainer._train_step away from a burst (the batch's
    data, the model's forward, loss, backward, clipping and optimizer: all but the loop around it);
    ``bare_times``: seconds of each counted bare forward+backward.
    """

    def __init__(self) -> None:
        self.original = lstmkit.LSTM.forward
        self.original_step = Trainer._train_step
        self.task_times: list[float] = []
        self.step_times: list[float] = []
        self.skip = 0  # training steps still to leave out of step_times (the one with a burst, the next)
        self.bare_times: list[float] = []
        self.last: tuple | None = None  # (module, time) of the previous training call, when it counts
        self.calls = 0
        self.copies: dict[int, lstmkit.LSTM] = {}
        self.peers: dict[str, tuple] = {}  # "ours", "peer": (network, optimizer), built at the first burst
        self.peer_times: dict[str, list[float]] = {"ours": [], "peer": []}
        self.burst_pending = False

    def __enter__(self):
        recorder = self

        def forward(module, input, hx=None, **kwargs):
            if module.training and torch.is_grad_enabled():
                recorder.training_call(module, input, kwargs.get("lengths"))
            else:
                recorder.last = None  # validation or inference: not a training step
            return recorder.original(module, input, hx, **kwargs)

        def train_step(trainer, batch):
            start = time.perf_counter()
            result = recorder.original_step(trainer, batch)
            if recorder.skip:
                recorder.skip -= 1
            else:
                recorder.step_times.append(time.perf_counter() - start)
            if recorder.burst_pending:
                recorder.burst_pending = False
                recorder.peer_steps(trainer, batch)
            return result

        lstmkit.LSTM.forward = forward
        Trainer._train_step = train_step
        return self

    def __exit__(self, *exc) -> None:
        lstmkit.LSTM.forward = self.original
        Trainer._train_step = self.original_step

    def training_call(self, module, input, lengths) -> None:
        now = time.perf_counter()
        if self.last is not None and self.last[0] is module:
            self.task_times.append(now - self.last[1])
        self.calls += 1
        if self.calls % BURST_EVERY:
            self.last = (module, now)
            return
        self.bare_burst(module, tuple(input.shape), input.requires_grad, lengths)
        self.burst_pending = True  # and the peer's step after this one
        self.last = None  # the next step follows the burst: not counted
        self.skip = 2

    def peer_steps(self, trainer: Trainer, batch) -> None:
        """One training step of the plain-PyTorch twin and one of a copy of the task's network, in turn
        (which goes first alternates), on the batch the task just trained on."""
        if not self.peers:
            kind = type(trainer.optimizer)
            accepted = inspect.signature(kind).parameters  # (defaults also holds derived settings)
            settings = {k: v for k, v in trainer.optimizer.defaults.items() if k in accepted}
            for name, network in (
                ("ours", copy.deepcopy(trainer.job.model)),
                ("peer", plain_twin(trainer.job.model)),
            ):
                self.peers[name] = (network, kind(network.parameters(), **settings))
        order = ["ours", "peer"] if len(self.peer_times["ours"]) % 2 else ["peer", "ours"]
        for name in order:
            network, optimizer = self.peers[name]
            self.peer_times[name].append(one_step(trainer, network, optimizer, batch))

    def bare_burst(self, module, shape, requires_grad, lengths) -> None:
        """Forward and backward of a copy of MODULE on random inputs of SHAPE, BURST times."""
        lstm = self.copies.setdefault(id(module), copy.deepcopy(module))
        lengths = None if lengths is None else torch.as_tensor(lengths).clone()
        for repeat in range(BURST):
            x = torch.randn(shape, requires_grad=requires_grad)
            start = time.perf_counter()
            out, _ = self.original(lstm, x, lengths=lengths)  # past the recording wrapper
            out.sum().backward()
            if repeat:
                self.bare_times.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="charlm,forecast,sentiment,classify", help="comma-separated tasks")
    parser.add_argument("--seconds", type=float, default=40.0, help="training budget per task and repeat")
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds per task, each a fresh run (the median is kept)"
    )
    args = parser.parse_args()
    print(f"machine: {machine.describe()}; backend {lstmkit.backends()[0]}")
    print(
        f"{'task':<10} {'steps':>6} {'task ms/step':>13} {'train_step ms':>14} {'bare LSTM ms':>13} "
        f"{'task / bare':>12} {'train_step / bare':>18} {'ours step ms':>13} {'plain torch ms':>15} "
        f"{'peer / ours':>12}"
    )
    for task in args.tasks.split(","):
        ratios, peer_ratios = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp, StepRecorder() as recorder:
                status = lstmkit_main(task_commands(args.seconds, Path(tmp))[task])
            if status != 0:
                raise SystemExit(f"{task}: the train command failed with status {status}")
            task_times, bare_times = recorder.task_times[2:], recorder.bare_times  # [2:]: warm-up
            if len(task_times) < 2 * BURST_EVERY:
                print(f"{task:<10} too few steps in {args.seconds:g} s to time; give more --seconds")
                break
            task_step, bare_step = statistics.mean(task_times), statistics.mean(bare_times)
            train_step = statistics.mean(recorder.step_times[2:])
            ratios.append(task_step / bare_step)
            ours_step = statistics.median(recorder.peer_times["ours"][1:])  # [1:]: the first builds caches
            peer_step = statistics.median(recorder.peer_times["peer"][1:])
            peer_ratios.append(peer_step / ours_step)
            print(
                f"{task:<10} {len(task_times):>6} {1e3 * task_step:>13.2f} {1e3 * train_step:>14.2f} "
                f"{1e3 * bare_step:>13.2f} {ratios[-1]:>12.2f} {train_step / bare_step:>18.2f} "
                f"{1e3 * ours_step:>13.2f} {1e3 * peer_step:>15.2f} {peer_ratios[-1]:>12.2f}",
                flush=True,
            )
        if ratios:
            print(
                f"{task:<10} median over {len(ratios)} rounds: task / bare {statistics.median(ratios):.2f}, "
                f"plain PyTorch / lstmkit training step {statistics.median(peer_ratios):.2f}"
            )


if __name__ == "__main__":
    main()
