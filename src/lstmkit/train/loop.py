"""One training loop for every task: progress bar, time budget, validation and early stopping, learning-rate
schedule, gradient clipping, seeding, resumable checkpoints, a stop on a non-finite loss, and data-parallel
training when started by torchrun (see lstmkit.train.distributed)."""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from lstmkit.backend import cpu
from lstmkit.config import NATURAL, NON_NEGATIVE, POSITIVE, POSITIVE_INT, SEED, Hyperparameters, Kind, option
from lstmkit.errors import InputError, TrainingDiverged
from lstmkit.layer import LSTM
from lstmkit.train import distributed
from lstmkit.train.checkpoint import (
    STATE_FILE,
    brief,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_tensors,
)
from lstmkit.train.flat import FlatParameters
from lstmkit.train.progress import Progress, clock

BF16_FROM_UNITS = 128  # auto takes bf16 from this LSTM size: below it the casts cost what the products save


def training_precision(precision: str, model: nn.Module) -> str:
    """The training steps' precision, "bf16" or "fp32", for PRECISION ("auto", "fp32", "bf16") and this
    model (see TrainConfig.precision): auto is bf16 where the model's LSTMs, all of BF16_FROM_UNITS units or
    more, run lstmkit's bf16 loops (a CPU with bf16 products); fp32 elsewhere, and without an lstmkit.LSTM."""
    if precision != "auto":
        return precision
    lstms = [m for m in model.modules() if isinstance(m, LSTM)]
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    large = bool(lstms) and all(m.hidden_size >= BF16_FROM_UNITS for m in lstms)
    return "bf16" if on_cpu and large and cpu.bf16_loops() else "fp32"


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Hyperparameters):
    """How to train; each task chooses its defaults (``with_defaults``), the caller overrides them."""

    epochs: int = option(30, "passes over the training data, at most", POSITIVE_INT, group="training")
    minutes: float | None = option(
        None, "wall-clock budget for training in minutes", POSITIVE, group="training"
    )
    optimizer: str = option(
        "adamw",
        "AdamW, or plain SGD (Zaremba et al.'s language models: lr 1 with --schedule decay)",
        choices=("adamw", "sgd"),
        group="training",
    )
    lr: float = option(3e-3, "learning rate", POSITIVE, group="training")
    weight_decay: float = option(
        0.0, "weight decay (AdamW's decoupled one; SGD's L2)", NON_NEGATIVE, group="training"
    )
    grad_clip: float = option(
        1.0, "largest gradient norm; 0: no clipping", NON_NEGATIVE, flag="--clip", group="training"
    )
    patience: int = option(
        5, "validations without improvement before stopping; 0: never", NATURAL, group="training"
    )
    schedule: str = option(
        "plateau",
        "halve the rate after 2 flat validations, anneal it to 0, keep it, or multiply it by --lr-decay "
        "every epoch after the first --decay-after",
        choices=("plateau", "cosine", "constant", "decay"),
        group="training",
    )
    lr_decay: float = option(
        0.5,
        "the decay schedule's factor per epoch",
        Kind("a number in (0, 1]", False, lambda v: 0 < v <= 1),
        group="training",
    )
    decay_after: int = option(
        4, "epochs at the full rate before the decay schedule starts", NATURAL, group="training"
    )
    average_after: int | None = option(
        None,
        "epochs after which every step's weights join a running average, the weights validated and kept "
        "(averaged SGD, as AWD-LSTM); default: no average",
        NATURAL,
        group="training",
    )
    eval_every: int = option(
        0, "optimizer steps between validations; 0: once per epoch", NATURAL, group="training"
    )
    checkpoint_every: float = option(
        5.0, "minutes between checkpoints (0.5: 30 s)", POSITIVE, group="training"
    )
    seed: int = option(0, "random seed: the same seed gives the same run", SEED, group="training")
    precision: str = option(
        "auto",
        "training steps in bf16 (torch.autocast; float32 master weights, validation in float32) or "
        "fp32; auto: bf16 on a CPU with bf16 products (AMX, AVX512-BF16) for LSTMs of "
        f"{BF16_FROM_UNITS} units or more, fp32 elsewhere",
        choices=("auto", "fp32", "bf16"),
        group="training",
    )

    def training(self) -> TrainConfig:
        """Only the training settings (of a task's config, which extends these)."""
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(TrainConfig)})


class Job(Protocol):
    """What the loop needs from a task.

    Under torchrun, ``loss`` gets this rank's shard of each batch (see ``distributed.shard``: a batch is a
    tensor or list of items, or a tuple of them) and ``self.model`` is the DDP wrapper while it runs;
    ``validate`` may average over the ranks' shares of the validation data (``distributed.weighted_mean``).
    A job that carries state from batch to batch (truncated BPTT) may also have ``extra_state() -> dict of
    tensors`` and ``load_extra_state(tensors)``: saved in checkpoints, restored after ``batches`` of the
    resumed epoch.
    """

    model: nn.Module

    def batches(self, epoch: int) -> list:
        """The training batches of one epoch, the same for the same seed and epoch (and on every rank)."""

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
    precision: str = ""  # of the training steps: "bf16" or "fp32" (TrainConfig.precision resolved)
    history: dict[str, list] = field(
        default_factory=lambda: {"step": [], "train_loss": [], "val_step": [], "val_loss": [], "lr": []}
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD, fused into one pass over all parameters where torch can (CPU since torch 2.4): with
    small models the per-parameter Python loop of the plain implementation costs as much as the LSTM."""
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.SGD
    options = {"lr": config.lr, "weight_decay": config.weight_decay}
    try:
        return kind(params, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device or dtype it cannot fuse
        return kind(params, foreach=True, **options)


class Trainer:
    """``Trainer(job, config, out_dir).fit(resume)`` trains ``job.model``, leaving its best weights in it.

    ``fit`` seeds torch and Python's random with ``config.seed`` (plus the rank, so that dropout differs
    between ranks) when training starts (a resumed run restores the saved random states instead); a task
    seeds before it builds its model, for the same initial weights. Under torchrun every rank runs ``fit``
    on its shard of each batch; rank 0 alone writes checkpoints and shows the progress bar.
    The model's small parameters move into one flat tensor when the Trainer is built (see
    ``lstmkit.train.flat``): the same Parameter objects, sharing the flat tensor's storage.
    """

    def __init__(
        self,
        job: Job,
        config: TrainConfig,
        out_dir: Path | None,
        unit: str = "items",
        progress: str = "auto",
    ) -> None:
        """OUT_DIR holds the resumable checkpoint (None: no checkpoints); PROGRESS: see ``Progress``."""
        self.job, self.config, self.unit, self.progress = job, config.training(), unit, progress
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.parameters = FlatParameters([p for p in job.model.parameters() if p.requires_grad])
        self.optimizer = make_optimizer(self.parameters.tensors, self.config)
        self.state = LoopState(precision=training_precision(self.config.precision, job.model))
        self.best_weights: dict[str, Tensor] | None = None
        self.average: AveragedModel | None = None  # the running average of the weights, once it starts
        self.parallel: nn.Module | None = None  # the model in DDP under torchrun
        self.pending_job_state: dict[str, Tensor] | None = None  # from a checkpoint, for the job

    # ---- the loop -------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> LoopState:
        cfg = self.config
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if distributed.is_main():  # half-written checkpoints of a run killed while writing
                for stale in self.out_dir.glob(f".{STATE_FILE}.*.tmp"):
                    stale.unlink(missing_ok=True)
        if resume:
            self.load_checkpoint()
        else:
            seed_everything(cfg.seed + distributed.rank())
        self.parallel = distributed.wrap(self.job.model)
        st = self.state
        budget = None if cfg.minutes is None else cfg.minutes * 60.0
        total_steps = cfg.epochs * len(self.job.batches(0))
        last_checkpoint = time.monotonic()
        window_items, window_start = 0, time.monotonic()
        with Progress(self.progress if distributed.is_main() else "off") as progress:
            while not st.stopped:
                if st.epoch >= cfg.epochs:
                    st.stopped = f"trained {cfg.epochs} epochs"
                    break
                batches = self.job.batches(st.epoch)
                if self.pending_job_state is not None and st.batch > 0:  # resumed in mid-epoch
                    self.job.load_extra_state(self.pending_job_state)
                self.pending_job_state = None
                self._apply_schedule(budget, total_steps)  # this epoch's rate from its first step
                for index in range(st.batch, len(batches)):
                    started = time.monotonic()
                    loss = self._train_step(batches[index])
                    st.elapsed += time.monotonic() - started
                    # every rank takes rank 0's clock, so that all stop and checkpoint at the same step
                    st.elapsed, since_checkpoint = _main_clock(st.elapsed, time.monotonic() - last_checkpoint)
                    st.batch = index + 1
                    window_items += loss[1]
                    self._apply_schedule(budget, total_steps)
                    if cfg.eval_every and st.step % cfg.eval_every == 0:
                        self._validate()
                    now = time.monotonic()
                    rate = window_items / max(now - window_start, 1e-9)
                    if now - window_start > 5:
                        window_items, window_start = 0, now
                    progress.update(self._percent_done(budget, total_steps), self._postfix(loss[0], rate))
                    if budget is not None and st.elapsed >= budget:
                        st.stopped = f"time budget of {cfg.minutes:g} min spent"
                    if st.stopped:
                        break
                    if self.out_dir is not None and since_checkpoint >= cfg.checkpoint_every * 60:
                        self.save_checkpoint()
                        last_checkpoint = time.monotonic()
                else:
                    st.epoch, st.batch = st.epoch + 1, 0
                    if not cfg.eval_every:
                        self._validate()
        if not st.history["val_step"] or st.history["val_step"][-1] != st.step:
            self._validate()
        if self.out_dir is not None:
            self.save_checkpoint()
        if self.best_weights is not None:
            self.job.model.load_state_dict(self.best_weights)
        return st

    def _train_step(self, batch) -> tuple[float, int]:
        model, st = self.job.model, self.state
        model.train()
        part, share = distributed.shard(batch)
        with self._parallel_model(), self._autocast():
            loss, items = self.job.loss(part)
        # the whole batch's mean loss and its items, from every rank's share
        value, items = distributed.sum_over_ranks([loss.item() * share, items if share else 0])
        if not math.isfinite(value):
            path = None if self.out_dir is None else self.out_dir / STATE_FILE
            kept = "start again"
            if path is not None and path.is_file():
                kept = f"the last good checkpoint is {path}: resume from it"
            raise TrainingDiverged(
                f"the training loss became {value} at step {st.step + 1}; {kept} with a lower --lr or a "
                "smaller --clip"
            )
        self.parameters.zero_grad()
        if self.parallel is None:
            loss.backward()
        else:  # DDP averages the ranks' gradients: weighted by share, that is the whole batch's gradient
            (loss * (share * distributed.world_size())).backward()
        if self.config.grad_clip:
            nn.utils.clip_grad_norm_(self.parameters.tensors, self.config.grad_clip, foreach=True)
        self.optimizer.step()
        if self.config.average_after is not None and st.epoch >= self.config.average_after:
            if self.average is None:
                self.average = AveragedModel(self.job.model)
            self.average.update_parameters(self.job.model)
        st.step += 1
        st.history["step"].append(st.step)
        st.history["train_loss"].append(value)
        st.history["lr"].append(self.optimizer.param_groups[0]["lr"])
        return value, int(items)

    @contextmanager
    def _parallel_model(self) -> Iterator[None]:
        """The job's model is the DDP wrapper inside this block (under torchrun)."""
        if self.parallel is None:
            yield
            return
        model, self.job.model = self.job.model, self.parallel
        try:
            yield
        finally:
            self.job.model = model

    def _autocast(self):
        """torch.autocast to bf16 around a training step's forward and loss when training in bf16."""
        device = next(self.job.model.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.state.precision == "bf16")

    @contextmanager
    def _averaged_weights(self) -> Iterator[None]:
        """Inside this block the model holds the averaged weights, once averaging has begun."""
        if self.average is None:
            yield
            return
        params = list(self.job.model.parameters())
        trained = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, averaged in zip(params, self.average.module.parameters()):
                p.copy_(averaged)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, kept in zip(params, trained):
                    p.copy_(kept)

    def _validate(self) -> None:
        cfg, st = self.config, self.state
        self.job.model.eval()
        with torch.no_grad(), self._averaged_weights():
            val = float(self.job.validate())
            better = val < st.best - 1e-6 * abs(st.best if math.isfinite(st.best) else 0)
            if better:
                self.best_weights = {k: v.detach().clone() for k, v in self.job.model.state_dict().items()}
        self.job.model.train()
        st.history["val_step"].append(st.step)
        st.history["val_loss"].append(val)
        if better:
            st.best, st.best_step, st.flat = val, st.step, 0
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
        elif (
            cfg.schedule == "decay"
        ):  # epoch e (from 0) trains at lr * lr_decay ** max(e + 1 - decay_after, 0)
            st.lr_scale = cfg.lr_decay ** max(st.epoch + 1 - cfg.decay_after, 0)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * st.lr_scale

    def _postfix(self, loss: float, rate: float) -> str:
        st = self.state
        val = f", val {st.history['val_loss'][-1]:.4f}" if st.history["val_loss"] else ""
        return f"step {st.step}, epoch {st.epoch + 1}, loss {loss:.4f}{val}, {rate:,.0f} {self.unit}/s"

    # ---- checkpoints ----------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Everything --resume needs, in one safetensors file written atomically (by rank 0).

        Each rank's random states and job state: rank 0's as ``rng.torch`` and ``job.NAME``, rank r's as
        ``rankR.rng.torch`` and ``rankR.job.NAME``; the Python random states in the metadata.
        """
        job_state = self.job.extra_state() if hasattr(self.job, "extra_state") else {}
        ranks = distributed.gather((torch.get_rng_state(), _jsonable(random.getstate()), job_state))
        if not distributed.is_main():
            return
        optim_tensors, optim_meta = optimizer_to_tensors(self.optimizer.state_dict())
        tensors = {f"model.{k}": v for k, v in self.job.model.state_dict().items()}
        if self.best_weights is not None:
            tensors.update({f"best.{k}": v for k, v in self.best_weights.items()})
        if self.average is not None:
            tensors.update({f"average.{k}": v for k, v in self.average.state_dict().items()})
        tensors.update(optim_tensors)
        for number, (rng, _, job) in enumerate(ranks):
            prefix = f"rank{number}." if number else ""
            tensors[f"{prefix}rng.torch"] = rng
            tensors.update({f"{prefix}job.{name}": value for name, value in job.items()})
        meta: dict[str, Any] = {
            "job": type(self.job).__name__,
            "world_size": len(ranks),
            "loop": asdict(self.state),
            "optimizer": optim_meta,
            "config": asdict(self.config),
            "python_random": [python for _, python, _ in ranks],
        }
        save_tensors(self.out_dir / STATE_FILE, tensors, meta)

    def load_checkpoint(self) -> None:
        """Restore what ``save_checkpoint`` wrote; rank 0 reads the file and sends it to the other ranks."""
        if self.out_dir is None:
            raise ValueError("resuming needs the directory of the checkpoint (out_dir)")
        path = self.out_dir / STATE_FILE
        tensors, meta = _read_checkpoint(path, type(self.job).__name__)
        model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        best = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
        average = {k[len("average.") :]: v for k, v in tensors.items() if k.startswith("average.")}
        try:
            self.job.model.load_state_dict(model_state)
            if average:
                self.average = AveragedModel(self.job.model)
                self.average.load_state_dict(average)
            self.optimizer.load_state_dict(optimizer_from_tensors(tensors, meta["optimizer"]))
            self.state = LoopState(**{**meta["loop"], "stopped": "", "precision": self.state.precision})
            self._restore_random_state(path, tensors, meta)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
            raise InputError(
                f"{path}: the checkpoint does not match this run ({brief(error)}); resume "
                "with the options it was written with, or start without --resume"
            ) from None
        self.best_weights = best or None
        st = self.state
        if distributed.is_main():
            where = (
                f"epoch {st.epoch + 1}, batch {st.batch}"
                if st.batch
                else f"the start of epoch {st.epoch + 1}"
            )
            print(
                f"Resumed {path}: step {st.step}, at {where}, after {clock(st.elapsed)} of training "
                f"(best validation loss so far {st.best:.4g}, step {st.best_step})",
                flush=True,
            )

    def _restore_random_state(self, path: Path, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """This rank's random states and job state, as saved; fresh ones for a rank the checkpoint lacks."""
        number, saved_ranks = distributed.rank(), meta["world_size"]
        prefix = f"rank{number}." if number else ""
        if number < saved_ranks:
            torch.set_rng_state(tensors[f"{prefix}rng.torch"])
            random.setstate(_tupled(meta["python_random"][number]))
        else:
            seed_everything(self.config.seed + number)
        job = {k[len(f"{prefix}job.") :]: v for k, v in tensors.items() if k.startswith(f"{prefix}job.")}
        if job and saved_ranks == distributed.world_size():
            self.pending_job_state = job
        elif job and self.state.batch and distributed.is_main():  # in mid-epoch, with other shards
            print(
                f"note: {path} was written by {saved_ranks} process(es), this run has "
                f"{distributed.world_size()}: the state carried between batches starts afresh",
                file=sys.stderr,
            )


def _read_checkpoint(path: Path, job: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The checkpoint's tensors and metadata, read by rank 0 and sent to every rank; InputError (on every
    rank) if it is missing, damaged, or another task's."""
    loaded: tuple | str | None = None
    if distributed.is_main():
        try:
            if not path.is_file():
                raise InputError(f"{path}: nothing to resume (no checkpoint); start without --resume")
            loaded = load_tensors(path)
            meta = loaded[1]
            if "loop" not in meta or "optimizer" not in meta or "rng.torch" not in loaded[0]:
                raise InputError(f"{path}: not a training checkpoint of lstmkit; start without --resume")
            if meta.get("job", job) != job:
                raise InputError(
                    f"{path}: a checkpoint of another task ({meta['job']}, not {job}); resume in that "
                    "task's --out directory, or start without --resume"
                )
        except InputError as error:
            loaded = str(error)
    loaded = distributed.from_main(loaded)
    if isinstance(loaded, str):
        raise InputError(loaded)
    return loaded


def _main_clock(*seconds: float) -> list[float]:
    """Rank 0's readings of its clocks, on every rank."""
    if distributed.world_size() < 2:
        return list(seconds)
    return distributed.sum_over_ranks([s if distributed.is_main() else 0.0 for s in seconds])


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tupled(value):
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value
