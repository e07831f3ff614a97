"""`lstmkit memory`: the long-time-lag experiments. lstmkit.LSTM against torch.nn.RNN (tanh) and
torch.nn.GRU of the same hidden size, with the same time budget, data and test set at each lag length.

The shared Trainer does not fit these runs: it walks epochs of a fixed list of batches, stops on a
validation loss and writes a checkpoint per run, while here every step draws a fresh batch, a run stops
as soon as the test error is below the task's threshold ("steps to solve"), and one command trains
models x lengths small networks. So a short loop of its own (``train_run``) serves.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from lstmkit import __version__
from lstmkit.backend import resolve
from lstmkit.cell import LSTMCell
from lstmkit.config import FINITE, NATURAL, NON_NEGATIVE, POSITIVE, POSITIVE_INT
from lstmkit.data.memory_tasks import TASKS, MemoryTask
from lstmkit.errors import InputError
from lstmkit.files import write_atomic
from lstmkit.layer import LSTM
from lstmkit.tasks.estimator import METRICS_FILE, prepare_out_dir
from lstmkit.tasks.registry import Task, register

MODELS = {"lstm": "lstmkit.LSTM", "gru": "torch.nn.GRU", "rnn": "torch.nn.RNN (tanh)"}
TABLE_FILE, ERRORS_FILE, CURVES_FILE = "table.md", "errors.png", "curves.png"
GRADIENTS_FILE, GRADIENTS_PLOT = "gradients.json", "gradients.png"
GRADIENT_BATCH = 100  # test sequences whose state gradients are averaged
TEST_SEED_OFFSET = 1_000_003  # the test set's generator seed is --seed + this: never the training stream

DESCRIPTION = """\
Reproduce the long-time-lag experiments of Hochreiter & Schmidhuber (1997): at each lag length,
train lstmkit.LSTM, torch.nn.GRU and torch.nn.RNN (tanh) with the same hidden size, data stream,
test set and time budget, and see which of them remembers.

Tasks (T is a --lengths value):
  adding          T pairs (value uniform in [0, 1], marker); markers on one step of each half;
                  target: the sum of the two marked values. Error: MSE on fresh sequences, solved
                  below 0.01; always answering 1.0 scores 1/6 = 0.167.
  copy            5 symbols of 8, a blank gap of T steps, then 5 recall steps: output the symbols.
                  Error: symbol error rate, solved below 0.01; guessing scores 0.875.
  temporal-order  T symbols with X or Y at a step in [T/10, T/5] and one in [T/2, 6T/10], distractors
                  elsewhere; classify the order (XX, XY, YX, YY). Error rate, solved below 0.01;
                  guessing scores 0.75.

Every step trains on a fresh batch (Adam, gradient clipping); every --eval-every steps the model is
tested on --test-size fresh sequences (the same for every model), and a run stops when it is solved
or its --minutes are spent. With --gradients, the norm of dL/dh_t (and dL/dc_t for the LSTM) at every
step t is measured on the longest length, before and after training: the vanishing gradient made visible.

DIR receives metrics.json (per model and length: test error, solved, steps and seconds to solve, the
test error over training), table.md (also printed), errors.png (test error and steps to solve against
lag length), curves.png (test error against training time) and, with --gradients, gradients.json and
gradients.png."""

EXAMPLES = """\
examples:
  lstmkit memory --task adding --lengths 10,50,100 --minutes 2 --out runs/adding
  lstmkit memory --task adding --lengths 100 --minutes 10 --gradients --out runs/adding100
  lstmkit memory --task temporal-order --lengths 50,100 --models lstm,rnn --out runs/order
  lstmkit memory --task copy --lengths 50 --models lstm --forget-bias 3 --minutes 3 --out runs/copy"""


def lengths_list(text: str) -> list[int]:
    """argparse type for --lengths: whole numbers >= 1, comma-separated; duplicates dropped, order kept."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"must be whole numbers >= 1 separated by commas, got {text!r}")
    return list(dict.fromkeys(int(p) for p in parts))


def models_list(text: str) -> list[str]:
    names = list(dict.fromkeys(p.strip() for p in text.split(",")))
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"must be names from {','.join(MODELS)} separated by commas, got {text!r}"
        )
    return names


def add_commands(memory: argparse.ArgumentParser) -> None:
    """`lstmkit memory`."""
    memory.epilog = EXAMPLES
    memory.add_argument("--task", choices=list(TASKS), default="adding", help="(default: %(default)s)")
    memory.add_argument(
        "--lengths",
        metavar="T,T,...",
        type=lengths_list,
        default=[10, 50, 100, 200, 500],
        help="lag lengths to test (default: 10,50,100,200,500)",
    )
    memory.add_argument("--out", metavar="DIR", type=Path, required=True, help="directory for the report")
    memory.add_argument(
        "--minutes",
        metavar="M",
        type=POSITIVE.parse,
        default=5.0,
        help="budget per model and length (default: 5)",
    )
    memory.add_argument(
        "--models",
        metavar="NAMES",
        type=models_list,
        default=list(MODELS),
        help="which of lstm,gru,rnn to train (default: all three)",
    )
    memory.add_argument(
        "--gradients", action="store_true", help="also measure dL/dh_t against t at the longest length"
    )
    group = memory.add_argument_group("training")
    group.add_argument(
        "--hidden-size", metavar="H", type=POSITIVE_INT.parse, default=64, help="(default: 64)"
    )
    group.add_argument("--batch-size", metavar="B", type=POSITIVE_INT.parse, default=64, help="(default: 64)")
    group.add_argument("--lr", type=POSITIVE.parse, default=3e-3, help="Adam's learning rate (default: 3e-3)")
    group.add_argument(
        "--clip", type=NON_NEGATIVE.parse, default=1.0, help="largest gradient norm (default: 1)"
    )
    group.add_argument(
        "--forget-bias",
        metavar="F",
        type=FINITE.parse,
        default=1.0,
        help="added to the LSTM's forget-gate bias at initialisation (default: 1; 3 for lags beyond ~50)",
    )
    group.add_argument(
        "--eval-every",
        metavar="N",
        type=POSITIVE_INT.parse,
        default=100,
        help="steps between tests (default: 100)",
    )
    group.add_argument(
        "--test-size",
        metavar="N",
        type=POSITIVE_INT.parse,
        default=1000,
        help="test sequences (default: 1000)",
    )
    group.add_argument("--seed", type=NATURAL.parse, default=0, help="data and initial weights (default: 0)")
    group.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="training steps of every model in bf16 (torch.autocast; float32 weights, tests in float32) or "
        "fp32 (default: fp32)",
    )
    memory.set_defaults(run=run_memory)


class MemoryModel(nn.Module):
    """A one-layer recurrent core and a linear head on its outputs at the last ``readout`` steps."""

    def __init__(self, kind: str, task: MemoryTask, hidden_size: int, forget_bias: float) -> None:
        super().__init__()
        self.kind, self.readout = kind, task.readout
        if kind == "lstm":
            self.core = LSTM(task.input_size, hidden_size, forget_bias=forget_bias)
        elif kind == "gru":
            self.core = nn.GRU(task.input_size, hidden_size)
        else:
            self.core = nn.RNN(task.input_size, hidden_size, nonlinearity="tanh")
        self.head = nn.Linear(hidden_size, task.outputs)

    def forward(self, x: Tensor) -> Tensor:
        """x (T, B, I) -> (R, B, C)."""
        output, _ = self.core(x)  # (T, B, H)
        return self.head(output[-self.readout :])


@dataclass
class Settings:
    """What every run of one command shares."""

    hidden_size: int
    batch_size: int
    lr: float
    clip: float
    forget_bias: float
    eval_every: int
    test_size: int
    seed: int
    minutes: float
    precision: str = "fp32"  # of the training steps: "bf16" runs each under torch.autocast


@dataclass
class RunResult:
    model: str
    length: int
    test_error: float = math.inf
    solved: bool = False
    steps_to_solve: int | None = None
    seconds_to_solve: float | None = None
    diverged: bool = False  # the training loss became NaN or infinite; the run stopped before that step
    steps: int = 0
    seconds: float = 0.0
    history: dict[str, list] = field(default_factory=lambda: {"step": [], "seconds": [], "test_error": []})


def evaluate(model: MemoryModel, task: MemoryTask, x: Tensor, y: Tensor, chunk: int = 500) -> float:
    """The task's error over the whole test set, in chunks of sequences (same value as one pass)."""
    model.eval()
    with torch.no_grad():
        outputs = torch.cat([model(x[:, i : i + chunk]) for i in range(0, x.shape[1], chunk)], dim=1)
    model.train()
    return task.error(outputs, y)


def train_run(
    model: MemoryModel, task: MemoryTask, length: int, settings: Settings, test: tuple[Tensor, Tensor]
) -> RunResult:
    """Train on fresh batches until the test error is below the task's threshold or the time is spent."""
    result = RunResult(model.kind, length)
    generator = torch.Generator().manual_seed(settings.seed)  # the same data stream for every model
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    budget = settings.minutes * 60.0
    started = time.monotonic()
    bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
    with tqdm(total=100.0, desc=f"{model.kind} T={length}", bar_format=bar_format) as bar:
        while True:
            x, y = task.generate(length, settings.batch_size, generator)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.precision == "bf16"):
                loss = task.loss(model(x), y)
            if not math.isfinite(loss.item()):  # keep the last finite weights and report their error
                result.diverged, result.test_error = True, evaluate(model, task, *test)
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip:
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
            optimizer.step()
            result.steps += 1
            elapsed = time.monotonic() - started
            out_of_time = elapsed >= budget
            if result.steps % settings.eval_every == 0 or out_of_time:
                result.test_error = evaluate(model, task, *test)
                elapsed = time.monotonic() - started
                result.history["step"].append(result.steps)
                result.history["seconds"].append(round(elapsed, 2))
                result.history["test_error"].append(result.test_error)
                if result.test_error < task.solved_below:
                    result.solved = True
                    result.steps_to_solve, result.seconds_to_solve = result.steps, round(elapsed, 1)
            error = f", test {task.error_name} {result.test_error:.4f}" if result.history["step"] else ""
            bar.set_postfix_str(f"step {result.steps}, loss {loss.item():.4f}{error}", refresh=False)
            bar.update(min(100.0, 100.0 * elapsed / budget) - bar.n)
            if result.solved or out_of_time:
                break
    result.seconds = round(time.monotonic() - started, 1)
    return result


def state_gradients(model: MemoryModel, x: Tensor, y: Tensor, task: MemoryTask) -> dict:
    """Run the model one step at a time, keep every h_t (and c_t), backpropagate the task's loss.

    Returns the loss and, per step t, the norm of dL/dh_t (and dL/dc_t for the LSTM), where L is the loss
    of one sequence, averaged over the batch: lists of T floats under "h" and "c" (None without a cell).
    The LSTM runs as an ``LSTMCell`` holding the layer's weights: its c_t is the very tensor that h_t and
    c_{t+1} are computed from, so its gradient is the whole of dL/dc_t.
    """
    steps, batch = x.shape[:2]
    h = c = x.new_zeros(batch, model.head.in_features)  # (B, H)
    if model.kind == "lstm":
        cell = LSTMCell(model.core.input_size, model.core.hidden_size)
        cell.load_state_dict({name.removesuffix("_l0"): p for name, p in model.core.state_dict().items()})
    hs, cs = [], []
    for t in range(steps):
        if model.kind == "lstm":
            h, c = cell(x[t], (h, c))
            c.retain_grad()
            cs.append(c)
        else:
            h = model.core(x[t : t + 1], h[None])[1][0]  # (B, H)
        h.retain_grad()
        hs.append(h)
    outputs = model.head(torch.stack(hs[-model.readout :]))  # (R, B, C): each h_t is also the output
    loss = task.loss(outputs, y)
    (loss * batch).backward()  # the sum of the per-sequence losses: each h_t gets its own sequence's dL/dh_t
    model.zero_grad(set_to_none=True)

    def norms(states: list[Tensor]) -> list[float]:
        return [s.grad.norm(dim=-1).mean().item() for s in states]

    return {"loss": loss.item(), "h": norms(hs), "c": norms(cs) if cs else None}


def run_memory(args: argparse.Namespace) -> None:
    task = TASKS[args.task]
    short = [n for n in args.lengths if n < task.min_length]
    if short:
        raise InputError(
            f"--lengths: the {task.name} task needs lengths >= {task.min_length}, got {short[0]}; "
            "choose longer ones"
        )
    out_dir = prepare_out_dir(args.out)
    torch.set_num_threads(1)  # small recurrent nets: one thread is as fast and leaves the other cores free
    settings = Settings(
        args.hidden_size,
        args.batch_size,
        args.lr,
        args.clip,
        args.forget_bias,
        args.eval_every,
        args.test_size,
        args.seed,
        args.minutes,
        args.precision,
    )
    started = time.monotonic()
    print(
        f"memory: {task.name} task, {task.length_means} in {args.lengths}; {', '.join(args.models)} with "
        f"{settings.hidden_size} units; up to {settings.minutes:g} min each; solved when the test "
        f"{task.error_name} < {task.solved_below:g} (baseline, {task.baseline_name}: {task.baseline:.3f})",
        flush=True,
    )
    results, gradients = [], {}
    for length in args.lengths:
        test = task.generate(
            length, settings.test_size, torch.Generator().manual_seed(args.seed + TEST_SEED_OFFSET)
        )
        for kind in args.models:
            torch.manual_seed(args.seed)
            model = MemoryModel(kind, task, settings.hidden_size, settings.forget_bias)
            measure = args.gradients and length == max(args.lengths)
            untrained = copy.deepcopy(model) if measure else None
            results.append(train_run(model, task, length, settings, test))
            if measure:
                x, y = test[0][:, :GRADIENT_BATCH], test[1][:, :GRADIENT_BATCH]
                gradients[kind] = {
                    "untrained": state_gradients(untrained, x, y, task),
                    "trained": state_gradients(model, x, y, task),
                }
    table = results_table(task, results)
    print(table, end="", flush=True)
    write_report(out_dir, task, args, settings, results, gradients, table, time.monotonic() - started)
    print(
        f"memory: wrote {METRICS_FILE}, {TABLE_FILE}, {ERRORS_FILE}, {CURVES_FILE}"
        + (f", {GRADIENTS_FILE}, {GRADIENTS_PLOT}" if gradients else "")
        + f" to {out_dir}"
    )


def results_table(task: MemoryTask, results: list[RunResult]) -> str:
    """A Markdown table: one row per length and model."""
    lines = [
        f"| T | model | test {task.error_name} | solved (< {task.solved_below:g}) | steps to solve "
        "| time to solve | steps run | time run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        solve = f"{r.steps_to_solve} | {duration(r.seconds_to_solve)}" if r.solved else "- | -"
        solved = "yes" if r.solved else "no (diverged)" if r.diverged else "no"
        lines.append(
            f"| {r.length} | {MODELS[r.model]} | {r.test_error:.4f} | {solved} | {solve} "
            f"| {r.steps} | {duration(r.seconds)} |"
        )
    return "\n".join(lines) + "\n"


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def write_report(
    out_dir: Path,
    task: MemoryTask,
    args: argparse.Namespace,
    settings: Settings,
    results: list[RunResult],
    gradients: dict,
    table: str,
    wall_time: float,
) -> None:
    from lstmkit.plots.plots import plot_memory_curves, plot_memory_errors, plot_state_gradients

    record = {
        "task": task.name,
        "error_name": task.error_name,
        "solved_below": task.solved_below,
        "baseline": task.baseline,
        "baseline_name": task.baseline_name,
        "models": {kind: MODELS[kind] for kind in args.models},
        "settings": asdict(settings),
        "results": [asdict(r) for r in results],
        "seed": settings.seed,
        "torch_threads": torch.get_num_threads(),
        "lstm_backend": resolve("auto").name,  # the backend lstmkit.LSTM ran on
        "wall_time_s": round(wall_time, 1),
        "lstmkit_version": __version__,
    }
    write_atomic(out_dir / METRICS_FILE, json.dumps(record, indent=2) + "\n")
    write_atomic(out_dir / TABLE_FILE, table)
    title = (
        f"{task.name} task: {settings.hidden_size} units, batch {settings.batch_size}, "
        f"Adam lr {settings.lr:g}, "
        f"LSTM forget bias {settings.forget_bias:g}\nup to {settings.minutes:g} min per model and length"
    )
    plot_memory_errors(out_dir / ERRORS_FILE, record, MODELS, title, task.length_means)
    plot_memory_curves(out_dir / CURVES_FILE, record, MODELS, title)
    if gradients:
        length = max(r.length for r in results)
        write_atomic(out_dir / GRADIENTS_FILE, json.dumps({"length": length, **gradients}, indent=2) + "\n")
        plot_state_gradients(
            out_dir / GRADIENTS_PLOT,
            gradients,
            MODELS,
            f"{task.name} task, T = {length}: gradient of the loss at the end with respect to each state",
        )


register(
    Task(
        "memory",
        "long-time-lag tasks: lstmkit.LSTM against a plain RNN and a GRU",
        add_commands,
        description=DESCRIPTION,
    )
)
