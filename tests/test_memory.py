"""`lstmkit memory`: the task generators against cases worked out by hand, the state-gradient helper
against the full-sequence call and the chain rule, the training loop's stop, the command end to end."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

import lstmkit
from lstmkit.cli import main
from lstmkit.data.memory_tasks import (
    TASKS,
    adding_batch,
    adding_sequence,
    copy_batch,
    copy_sequence,
    temporal_order_batch,
    temporal_order_positions,
    temporal_order_sequence,
)
from lstmkit.tasks.memory import MemoryModel, Settings, state_gradients, train_run


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- generators -----------------------------------------------------------------------------------------
def test_adding_sequence_by_hand():
    values = torch.tensor([[0.5, 0.9], [0.25, 0.1], [0.75, 0.2], [0.1, 0.3]])  # (T=4, B=2)
    x, y = adding_sequence(values, torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert torch.equal(x[:, :, 0], values)
    assert x[:, :, 1].tolist() == [[1, 0], [0, 1], [1, 0], [0, 1]]
    assert y.tolist() == [[pytest.approx(1.25), pytest.approx(0.4)]]  # 0.5 + 0.75; 0.1 + 0.3


def test_adding_batch_marks_one_step_per_half_and_sums_them():
    x, y = adding_batch(9, 300, seeded(3))
    assert torch.equal(x, adding_batch(9, 300, seeded(3))[0]) and not torch.equal(
        x, adding_batch(9, 300, seeded(4))[0]
    )
    values, marker = x[..., 0], x[..., 1]
    assert values.min() >= 0 and values.max() < 1
    for b in range(300):
        marked = [t for t in range(9) if marker[t, b] == 1]
        assert len(marked) == 2 and marked[0] < 4 <= marked[1]  # halves [0, 4) and [4, 9)
        assert y[0, b].item() == pytest.approx(values[marked[0], b].item() + values[marked[1], b].item())
    assert set(marker.unique().tolist()) == {0.0, 1.0}


def test_adding_baseline_of_always_one_is_a_sixth():
    # x1, x2 uniform in [0, 1]: E[(x1 + x2 - 1)^2] = Var(x1) + Var(x2) = 1/12 + 1/12 = 1/6
    x, y = adding_batch(2, 200_000, seeded(0))
    task = TASKS["adding"]
    assert task.error(torch.ones(1, 200_000, 1), y) == pytest.approx(1 / 6, abs=0.002)
    assert task.baseline == pytest.approx(0.1667, abs=1e-4)


def test_copy_sequence_by_hand():
    x, y = copy_sequence(torch.tensor([[3], [1]]), gap=2)  # K=2 symbols, 2 blanks, 2 recall steps
    assert x.shape == (6, 1, 10) and torch.equal(x.sum(-1), torch.ones(6, 1))
    assert x.argmax(-1)[:, 0].tolist() == [3, 1, 8, 8, 9, 9]  # 8: blank, 9: recall
    assert y.tolist() == [[3], [1]]


def test_copy_batch_recalls_the_symbols_it_showed():
    x, y = copy_batch(7, 50, seeded(1))
    codes = x.argmax(-1)  # (5 + 7 + 5, 50)
    assert codes.shape == (17, 50)
    assert torch.equal(codes[:5], y) and (y < 8).all()
    assert (codes[5:12] == 8).all() and (codes[12:] == 9).all()
    assert torch.equal(x, copy_batch(7, 50, seeded(1))[0])


def test_temporal_order_positions_match_the_1997_ranges():
    assert temporal_order_positions(100) == (10, 20, 50, 60)  # 1997: t1 in [10, 20], t2 in [50, 60]
    assert temporal_order_positions(10) == (1, 2, 5, 6)
    assert temporal_order_positions(4) == (1, 1, 2, 2)


def test_temporal_order_sequence_by_hand():
    distractors = torch.tensor([[0], [1], [2], [3], [0], [1], [2], [3]])  # (T=8, B=1)
    x, y = temporal_order_sequence(
        distractors, torch.tensor([2]), torch.tensor([5]), torch.tensor([1]), torch.tensor([0])
    )
    assert "".join("abcdXYBE"[c] for c in x.argmax(-1)[:, 0]) == "BbYdaXcE"
    assert y.tolist() == [[2]]  # Y then X: class YX = 2


def test_temporal_order_batch_places_x_or_y_once_in_each_range():
    x, y = temporal_order_batch(30, 200, seeded(2))
    codes = x.argmax(-1)  # (30, 200)
    assert (codes[0] == 6).all() and (codes[-1] == 7).all()
    for b in range(200):
        relevant = [t for t in range(30) if codes[t, b] in (4, 5)]
        assert len(relevant) == 2 and 3 <= relevant[0] <= 6 and 15 <= relevant[1] <= 18
        first, second = (codes[t, b].item() - 4 for t in relevant)
        assert y[0, b].item() == 2 * first + second
    assert set(y[0].tolist()) == {0, 1, 2, 3}


def test_class_error_is_the_fraction_of_wrong_answers():
    task = TASKS["copy"]
    output = torch.zeros(2, 2, 8)  # (R=2, B=2, C=8)
    output[0, 0, 3] = output[0, 1, 5] = output[1, 0, 1] = output[1, 1, 1] = 1.0
    assert task.error(output, torch.tensor([[3, 4], [1, 1]])) == 0.25
    one_wrong = torch.zeros(1, 100, 8)  # (R=1, B=100, C=8): every answer is class 0
    targets = torch.zeros(1, 100, dtype=torch.long)
    targets[0, 7] = 2
    assert task.error(one_wrong, targets) == 0.01  # exactly the threshold: not solved


# ---- models and state gradients -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("name", ["adding", "copy"])
def test_step_by_step_gives_the_full_sequence_loss(kind, name):
    task = TASKS[name]
    torch.manual_seed(0)
    model = MemoryModel(kind, task, 16, forget_bias=1.0)
    x, y = task.generate(6, 5, seeded(0))
    expected = task.loss(model(x), y).item()
    assert state_gradients(model, x, y, task)["loss"] == pytest.approx(expected, rel=1e-5)


def test_rnn_state_gradients_follow_the_chain_rule():
    task = TASKS["adding"]
    torch.manual_seed(1)
    model = MemoryModel("rnn", task, 8, forget_bias=0.0)
    x, y = task.generate(5, 4, seeded(1))
    measured = state_gradients(model, x, y, task)
    with torch.no_grad():
        h = model.core(x)[0]  # (T, B, H)
        w = model.head.weight[0]  # (H,)
        pred = model.head(h[-1])[:, 0]  # (B,)
        # per sequence L = (pred - y)^2: dL/dh_T = 2 (pred - y) w; h_T = tanh(... + W_hh h_{T-1})
        d_last = 2 * (pred - y[0])[:, None] * w  # (B, H)
        d_before = (d_last * (1 - h[-1] ** 2)) @ model.core.weight_hh_l0  # (B, H)
    assert measured["c"] is None
    assert measured["h"][-1] == pytest.approx(d_last.norm(dim=-1).mean().item(), rel=1e-5)
    assert measured["h"][-2] == pytest.approx(d_before.norm(dim=-1).mean().item(), rel=1e-5)


def test_lstm_cell_gradient_at_the_end_is_the_hidden_ones_through_tanh():
    task = TASKS["adding"]
    torch.manual_seed(2)
    model = MemoryModel("lstm", task, 8, forget_bias=1.0)
    x, y = task.generate(5, 4, seeded(2))
    measured = state_gradients(model, x, y, task)
    with torch.no_grad():
        output, (_, c_n), trace = model.core(x, return_trace=True)
        pred = model.head(output[-1])[:, 0]  # (B,)
        d_h = 2 * (pred - y[0])[:, None] * model.head.weight[0]  # (B, H)
        o_last = trace.output_gate[0, -1]  # (B, H)
        d_c = d_h * o_last * (1 - torch.tanh(c_n[0]) ** 2)  # h_T = o_T tanh(c_T)
    assert measured["h"][-1] == pytest.approx(d_h.norm(dim=-1).mean().item(), rel=1e-5)
    assert measured["c"][-1] == pytest.approx(d_c.norm(dim=-1).mean().item(), rel=1e-5)
    assert len(measured["c"]) == len(measured["h"]) == 5


def test_a_run_stops_at_the_first_test_below_the_threshold():
    task = dataclasses.replace(TASKS["adding"], solved_below=10.0)  # every MSE here is below 10
    torch.manual_seed(0)
    model = MemoryModel("rnn", task, 4, forget_bias=0.0)
    settings = Settings(4, 8, 1e-3, 1.0, 0.0, eval_every=3, test_size=20, seed=0, minutes=1.0)
    result = train_run(model, task, 5, settings, task.generate(5, 20, seeded(9)))
    assert result.solved and result.steps == result.steps_to_solve == 3
    assert result.history["step"] == [3] and result.test_error < 10


def test_a_run_stops_when_the_loss_is_not_finite():
    task = dataclasses.replace(
        TASKS["adding"], generate=lambda t, b, g: (torch.full((t, b, 2), math.nan), torch.zeros(1, b))
    )
    torch.manual_seed(0)
    model = MemoryModel("gru", task, 4, forget_bias=0.0)
    settings = Settings(4, 8, 1e-3, 1.0, 0.0, eval_every=3, test_size=20, seed=0, minutes=1.0)
    result = train_run(model, task, 5, settings, TASKS["adding"].generate(5, 20, seeded(9)))
    assert result.diverged and not result.solved and result.steps == 0 and math.isfinite(result.test_error)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no step was taken


# ---- the command ----------------------------------------------------------------------------------------
TINY = [
    "--minutes",
    "0.01",
    "--eval-every",
    "5",
    "--test-size",
    "40",
    "--hidden-size",
    "8",
    "--batch-size",
    "8",
]


@pytest.mark.parametrize("name, lengths", [("adding", "3,6"), ("copy", "2"), ("temporal-order", "5")])
def test_memory_command_end_to_end(name, lengths, tmp_path, capsys):
    out = tmp_path / name
    extra = ["--gradients"] if name == "adding" else []
    assert main(["memory", "--task", name, "--lengths", lengths, "--out", str(out), *TINY, *extra]) == 0
    record = json.loads((out / "metrics.json").read_text())
    expected_files = {"metrics.json", "table.md", "errors.png", "curves.png"}
    assert {p.name for p in out.iterdir()} == expected_files | (
        {"gradients.json", "gradients.png"} if extra else set()
    )
    runs = record["results"]
    assert [(r["length"], r["model"]) for r in runs] == [
        (int(n), kind) for n in lengths.split(",") for kind in ("lstm", "gru", "rnn")
    ]
    table = (out / "table.md").read_text().splitlines()
    assert len(table) == 2 + len(runs) and table[0] in capsys.readouterr().out
    assert record["lstm_backend"] in lstmkit.backends()
    for r, row in zip(runs, table[2:]):
        assert r["solved"] == (r["test_error"] < record["solved_below"])
        assert r["history"]["test_error"][-1] == r["test_error"] and r["history"]["step"][-1] == r["steps"]
        assert row.split(" | ")[2] == f"{r['test_error']:.4f}"
    if extra:
        gradients = json.loads((out / "gradients.json").read_text())
        assert gradients["length"] == 6 and len(gradients["lstm"]["trained"]["c"]) == 6
        assert gradients["rnn"]["untrained"]["c"] is None and len(gradients["gru"]["untrained"]["h"]) == 6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lengths", "0"], "--lengths: must be whole numbers >= 1"),
        (["--lengths", "10,x"], "--lengths: must be whole numbers >= 1"),
        (["--task", "parity"], "--task: invalid choice"),
        (["--models", "lstm,mlp"], "--models: must be names from lstm,gru,rnn"),
        (["--task", "temporal-order", "--lengths", "3"], "needs lengths >= 4, got 3"),
    ],
)
def test_bad_options_get_one_line_and_status_2(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        status = main(["memory", "--out", str(tmp_path / "out"), *argv])
        raise SystemExit(status)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error and "Traceback" not in error
