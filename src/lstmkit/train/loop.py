"""One training loop for every task: progress bar, time budget, validation and early stopping, learning-rate
schedule, gradient clipping, seeding, resumable checkpoints, and a stop on a non-finite loss."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from lstmkit.errors import InputError, TrainingDiverged
from lstmkit.train.checkpoint import (
    STATE_FILE,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_tensors,
)


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the task chooses the defaults, the command line overrides them."""

    epochs: int = 30  # passes over the training data, at most
    minutes: float | None = None  # wall-clock budget for training; None: no limit
    lr: float = 3e-3  # AdamW's learning rate at the start
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    grad_clip: float = 1.0  # largest gradient norm; larger gradients are scaled down (0: no clipping)
    patience: int = 5  # validations without improvement before stopping early (0: never stop early)
    schedule: str = (
        "plateau"  # "plateau": halve lr after 2 flat validations; "cosine": anneal to 0; "constant"
    )
    eval_every: int = 0  # optimizer steps between validations; 0: once per epoch
    checkpoint_every: float = 5.0  # minutes between resumable checkpoints
    seed: int = 0  # seeds torch and Python's random: the same seed, the same run


class Job(Protocol):
    """What the loop needs from a task."""

    model: nn.Module

    def batches(self, epoch: int) -> list:
        """The training batches of one epoch, the same for the same seed and epoch."""

    def loss(self, batch) -> tuple[Tensor, int]:
        """Mean training loss of a batch and the number of items in it (for the throughput)."""

    def validate(self) -> float:
        """Validation loss: lower is better; early stopping and the schedule follow it."""


@dataclass
class LoopState:
    """Where training stands; saved in checkpoints so that --resume continues exactly."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches of the current epoch already trained
    elapsed: float = 0.0  # seconds of training, summed over resumed runs
    lr_scale: float = 1.0
    best: float = math.inf  # best validation loss so far
    best_step: int = 0
    flat: int = 0  # validations since the last improvement
    stopped: str = ""  # why training ended
    history: dict[str, list] = field(
        default_factory=lambda: {"step": [], "train_loss": [], "val_step": [], "val_loss": [], "lr": []}
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """``Trainer(job, config, out_dir).fit(resume)`` trains ``job.model``, leaving its best weights in it.

    ``fit`` seeds torch and Python's random with ``config.seed`` when training starts (a resumed run restores
    the saved random state instead); a task seeds before it builds its model, for the same initial weights.
    """

    def __init__(self, job: Job, config: TrainConfig, out_dir: Path, unit: str = "items") -> None:
        self.job, self.config, self.out_dir, self.unit = job, config, Path(out_dir), unit
        params = [p for p in job.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.state = LoopState()
        self.best_weights: dict[str, Tensor] | None = None

    # ---- the loop -------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> LoopState:
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint()
        else:
            seed_everything(cfg.seed)
        st = self.state
        budget = None if cfg.minutes is None else cfg.minutes * 60.0
        total_steps = cfg.epochs * len(self.job.batches(0))
        last_checkpoint = time.monotonic()
        window_items, window_start = 0, time.monotonic()
        bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
        with tqdm(total=100.0, desc="training", bar_format=bar_format) as bar:
            while not st.stopped:
                if st.epoch >= cfg.epochs:
                    st.stopped = f"trained {cfg.epochs} epochs"
                    break
                batches = self.job.batches(st.epoch)
                for index in range(st.batch, len(batches)):
                    started = time.monotonic()
                    loss = self._train_step(batches[index])
                    st.elapsed += time.monotonic() - started
                    st.batch = index + 1
                    window_items += loss[1]
                    self._apply_schedule(budget, total_steps)
                    if cfg.eval_every and st.step % cfg.eval_every == 0:
                        self._validate()
                    now = time.monotonic()
                    rate = window_items / max(now - window_start, 1e-9)
                    if now - window_start > 5:
                        window_items, window_start = 0, now
                    bar.set_postfix_str(self._postfix(loss[0], rate), refresh=False)
                    bar.update(self._percent_done(budget, total_steps) - bar.n)
                    if budget is not None and st.elapsed >= budget:
                        st.stopped = f"time budget of {cfg.minutes:g} min spent"
                    if st.stopped:
                        break
                    if now - last_checkpoint >= cfg.checkpoint_every * 60:
                        self.save_checkpoint()
                        last_checkpoint = time.monotonic()
                else:
                    st.epoch, st.batch = st.epoch + 1, 0
                    if not cfg.eval_every:
                        self._validate()
        if not st.history["val_step"] or st.history["val_step"][-1] != st.step:
            self._validate()
        self.save_checkpoint()
        if self.best_weights is not None:
            self.job.model.load_state_dict(self.best_weights)
        return st

    def _train_step(self, batch) -> tuple[float, int]:
        model, st = self.job.model, self.state
        model.train()
        loss, items = self.job.loss(batch)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the training loss became {value} at step {st.step + 1}; the last good checkpoint is "
                f"{self.out_dir / STATE_FILE}: resume from it with a lower --lr or a smaller --clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        st.step += 1
        st.history["step"].append(st.step)
        st.history["train_loss"].append(value)
        st.history["lr"].append(self.optimizer.param_groups[0]["lr"])
        return value, items

    def _validate(self) -> None:
        cfg, st = self.config, self.state
        self.job.model.eval()
        with torch.no_grad():
            val = float(self.job.validate())
        self.job.model.train()
        st.history["val_step"].append(st.step)
        st.history["val_loss"].append(val)
        if val < st.best - 1e-6 * abs(st.best if math.isfinite(st.best) else 0):
            st.best, st.best_step, st.flat = val, st.step, 0
            self.best_weights = {k: v.detach().clone() for k, v in self.job.model.state_dict().items()}
            return
        st.flat += 1
        if cfg.schedule == "plateau" and st.flat % 2 == 0:
            st.lr_scale *= 0.5
        if cfg.patience and st.flat >= cfg.patience:
            st.stopped = f"no improvement in {cfg.patience} validations (best at step {st.best_step})"

    def _percent_done(self, budget: float | None, total_steps: int) -> float:
        """How far training is, in percent: by time or by steps, whichever ends it first."""
        done = self.state.step / max(1, total_steps)
        if budget is not None:
            done = max(done, self.state.elapsed / budget)
        return 100.0 * min(done, 1.0)

    def _apply_schedule(self, budget: float | None, total_steps: int) -> None:
        cfg, st = self.config, self.state
        if cfg.schedule == "cosine":
            st.lr_scale = 0.5 * (1 + math.cos(math.pi * self._percent_done(budget, total_steps) / 100))
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * st.lr_scale

    def _postfix(self, loss: float, rate: float) -> str:
        st = self.state
        val = f", val {st.history['val_loss'][-1]:.4f}" if st.history["val_loss"] else ""
        return f"step {st.step}, epoch {st.epoch + 1}, loss {loss:.4f}{val}, {rate:,.0f} {self.unit}/s"

    # ---- checkpoints ----------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Everything --resume needs, in one safetensors file written atomically."""
        optim_tensors, optim_meta = optimizer_to_tensors(self.optimizer.state_dict())
        tensors = {f"model.{k}": v for k, v in self.job.model.state_dict().items()}
        if self.best_weights is not None:
            tensors.update({f"best.{k}": v for k, v in self.best_weights.items()})
        tensors.update(optim_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        meta: dict[str, Any] = {
            "loop": asdict(self.state),
            "optimizer": optim_meta,
            "config": asdict(self.config),
            "python_random": _jsonable(random.getstate()),
        }
        save_tensors(self.out_dir / STATE_FILE, tensors, meta)

    def load_checkpoint(self) -> None:
        path = self.out_dir / STATE_FILE
        if not path.is_file():
            raise InputError(f"{path}: nothing to resume (no checkpoint); start without --resume")
        tensors, meta = load_tensors(path)
        if "loop" not in meta:
            raise InputError(f"{path}: not a training checkpoint of lstmkit; start without --resume")
        model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.job.model.load_state_dict(model_state)
        except RuntimeError as error:
            raise InputError(
                f"{path}: the checkpoint's model does not match this run's ({str(error).splitlines()[0]}); "
                "resume with the same options, or start without --resume"
            ) from None
        best = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
        self.best_weights = best or None
        self.optimizer.load_state_dict(optimizer_from_tensors(tensors, meta["optimizer"]))
        self.state = LoopState(**{**meta["loop"], "stopped": ""})
        torch.set_rng_state(tensors["rng.torch"])
        random.setstate(_tupled(meta["python_random"]))


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tupled(value):
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value
