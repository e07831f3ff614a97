"""The shared training loop: it learns, resumes exactly, stops early, stops on NaN, and checkpoints safely."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lstmkit
from lstmkit.errors import InputError, TrainingDiverged
from lstmkit.train.checkpoint import STATE_FILE, load_model, load_tensors, save_model
from lstmkit.train.loop import TrainConfig, Trainer


class SumJob:
    """Predict the sum of a sequence of numbers: a tiny LSTM regression."""

    def __init__(self, seed: int = 0, poison_at: int | None = None):
        gen = torch.Generator().manual_seed(123)
        self.x = torch.randn(96, 6, 1, generator=gen)  # (N, T, 1)
        self.y = self.x.sum(dim=(1, 2))  # (N,)
        torch.manual_seed(seed)
        self.model = nn.ModuleDict({"lstm": lstmkit.LSTM(1, 8, batch_first=True), "head": nn.Linear(8, 1)})
        self.seed, self.poison_at, self.calls = seed, poison_at, 0

    def predict(self, x):
        out, _ = self.model["lstm"](x)  # (B, T, 8)
        return self.model["head"](out[:, -1]).squeeze(-1)

    def batches(self, epoch):
        order = torch.randperm(64, generator=torch.Generator().manual_seed(1000 * self.seed + epoch))
        return [order[i : i + 16] for i in range(0, 64, 16)]

    def loss(self, batch):
        self.calls += 1
        loss = torch.mean((self.predict(self.x[batch]) - self.y[batch]) ** 2)
        if self.poison_at is not None and self.calls >= self.poison_at:
            loss = loss * math.nan
        return loss, len(batch)

    def validate(self):
        return torch.mean((self.predict(self.x[64:]) - self.y[64:]) ** 2).item()


def test_training_lowers_the_validation_loss(tmp_path):
    job = SumJob()
    before = job.validate()
    state = Trainer(job, TrainConfig(epochs=40, lr=1e-2, patience=0), tmp_path).fit()
    assert state.step == 160 and state.stopped == "trained 40 epochs"
    assert job.validate() == pytest.approx(state.best) and state.best < before / 4
    assert len(state.history["val_loss"]) == 40


def test_resume_continues_exactly_where_it_stopped(tmp_path, capsys):
    straight = SumJob()
    Trainer(straight, TrainConfig(epochs=4, lr=1e-2), tmp_path / "a").fit()
    first = SumJob()
    Trainer(first, TrainConfig(epochs=2, lr=1e-2), tmp_path / "b").fit()
    resumed = SumJob(seed=0)
    with torch.no_grad():  # scramble the fresh model: resume must overwrite every weight
        for p in resumed.model.parameters():
            p.add_(1.0)
    capsys.readouterr()
    state = Trainer(resumed, TrainConfig(epochs=4, lr=1e-2), tmp_path / "b").fit(resume=True)
    assert state.step == 16
    said = capsys.readouterr().out  # where it resumed: 2 epochs of 4 batches done
    assert f"Resumed {tmp_path / 'b' / STATE_FILE}: step 8, at the start of epoch 3, after 0:0" in said
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_early_stopping_after_patience_flat_validations(tmp_path):
    job = SumJob()
    job.validate = lambda: 1.0  # never improves after the first validation
    state = Trainer(job, TrainConfig(epochs=50, patience=3), tmp_path).fit()
    assert state.epoch == 4 and "no improvement in 3 validations" in state.stopped
    assert state.lr_scale == 0.5  # plateau schedule: halved after two flat validations


def test_non_finite_loss_stops_with_a_message_and_keeps_the_checkpoint(tmp_path):
    job = SumJob(poison_at=6)
    trainer = Trainer(job, TrainConfig(epochs=5, lr=1e-2, checkpoint_every=1e-9), tmp_path)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 6; the last good checkpoint"):
        trainer.fit()
    tensors, meta = load_tensors(tmp_path / STATE_FILE)
    assert meta["loop"]["step"] == 5 and all(
        torch.isfinite(t).all() for k, t in tensors.items() if k != "rng.torch"
    )


def test_damaged_checkpoints_are_reported_not_unpickled(tmp_path):
    job = SumJob()
    Trainer(job, TrainConfig(epochs=1), tmp_path).fit()
    path = tmp_path / STATE_FILE
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(
        InputError, match=r"checkpoint.safetensors: not a readable checkpoint \(truncated or corrupt"
    ):
        Trainer(SumJob(), TrainConfig(epochs=2), tmp_path).fit(resume=True)
    with pytest.raises(InputError, match=r"nothing to resume"):
        Trainer(SumJob(), TrainConfig(epochs=2), tmp_path / "empty").fit(resume=True)


def test_model_directory_round_trip_and_task_check(tmp_path):
    job = SumJob()
    save_model(tmp_path, job.model, {"task": "sum", "hidden": 8})
    config, tensors = load_model(tmp_path, "sum")
    assert config["hidden"] == 8
    assert all(torch.equal(tensors[k], v) for k, v in job.model.state_dict().items())
    with pytest.raises(InputError, match=r"holds a 'sum' model, not a 'forecast' one"):
        load_model(tmp_path, "forecast")


def test_training_without_a_directory_writes_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = Trainer(SumJob(), TrainConfig(epochs=2), None).fit()
    assert state.step == 8 and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="resuming needs the directory"):
        Trainer(SumJob(), TrainConfig(epochs=2), None).fit(resume=True)


def test_auto_precision_takes_bf16_only_for_large_lstms_on_a_cpu_with_bf16_products(monkeypatch):
    from lstmkit.backend import cpu
    from lstmkit.train.loop import BF16_FROM_UNITS, training_precision

    small, large = SumJob().model, nn.Sequential(lstmkit.LSTM(4, BF16_FROM_UNITS))
    monkeypatch.setattr(cpu, "_BF16_PRODUCTS", [True])
    assert training_precision("auto", large) == "bf16"
    assert training_precision("auto", small) == "fp32"  # 8 units: the casts would cost what bf16 saves
    assert training_precision("auto", nn.Linear(2, 2)) == "fp32"  # no lstmkit.LSTM
    assert training_precision("fp32", large) == "fp32" and training_precision("bf16", small) == "bf16"
    monkeypatch.setattr(cpu, "_BF16_PRODUCTS", [False])
    assert training_precision("auto", large) == "fp32"


def test_bf16_training_runs_under_autocast_with_float32_master_weights(tmp_path, monkeypatch):
    """--precision bf16: the LSTM runs in bf16 inside each training step (its output under the step is
    bf16), the parameters and their optimizer stay float32, validation runs in float32, and the model
    still learns: the validation loss drops as far as in float32 (within 2x of its loss)."""
    dtypes = []
    job = SumJob()
    original = job.model["lstm"].forward

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        dtypes.append((torch.is_autocast_enabled("cpu"), out[0].dtype))
        return out

    monkeypatch.setattr(job.model["lstm"], "forward", recording)
    before = job.validate()
    state = Trainer(job, TrainConfig(epochs=40, lr=1e-2, patience=0, precision="bf16"), tmp_path).fit()
    assert state.precision == "bf16"
    assert (True, torch.bfloat16) in dtypes and (False, torch.float32) in dtypes  # steps; validation
    assert all(dtype == torch.bfloat16 for enabled, dtype in dtypes if enabled)
    assert all(p.dtype == torch.float32 for p in job.model.parameters())
    fp32 = SumJob()
    Trainer(fp32, TrainConfig(epochs=40, lr=1e-2, patience=0, precision="fp32"), tmp_path / "fp32").fit()
    assert state.best < before / 4 and state.best < 2 * fp32.validate()


class DriftJob:
    """One weight w and loss w: plain SGD moves w by -lr every step, so its average is known exactly."""

    def __init__(self):
        self.model = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.model.weight.fill_(1.0)
        self.seen: list[float] = []

    def batches(self, epoch):
        return [0, 1, 2, 3]

    def loss(self, batch):
        return self.model.weight.sum(), 1

    def validate(self):
        self.seen.append(self.model.weight.item())
        return self.model.weight.item()


def test_averaged_sgd_validates_and_keeps_the_mean_of_the_weights_since_its_epoch(tmp_path):
    job = DriftJob()
    config = TrainConfig(
        optimizer="sgd", lr=0.125, epochs=4, grad_clip=0, schedule="constant", average_after=2
    )
    trainer = Trainer(job, config, tmp_path)
    state = trainer.fit()
    after = [1.0 - 0.125 * step for step in range(1, 17)]  # w after each of the 16 steps
    # epochs 1 and 2 validate the weights as trained, epochs 3 and 4 the mean since step 9
    assert job.seen[:2] == [after[3], after[7]]
    assert job.seen[2:] == pytest.approx([sum(after[8:12]) / 4, sum(after[8:16]) / 8])
    assert trainer.average.n_averaged.item() == 8
    # the best validation was the last: the model keeps the average, not the weights as trained
    assert state.best_step == 16 and job.model.weight.item() == pytest.approx(sum(after[8:16]) / 8)
    resumed = Trainer(DriftJob(), config.updated(epochs=5), tmp_path)
    resumed.fit(resume=True)
    assert resumed.average.n_averaged.item() == 12  # the average went on from the checkpoint
