"""What every estimator shares: hyperparameters, training through the one Trainer, save and load.

An estimator is one job as a Python object, in the conventions of scikit-learn and Darts:

    fc = lstmkit.Forecaster(horizon=12)           # hyperparameters (the task's Config) in the constructor
    fc.fit(df, target="sales", minutes=2)         # training settings may also be given to fit; returns self
    fc.evaluate()                                 # the metrics of metrics.json, baselines included
    fc.save("runs/sales"); lstmkit.Forecaster.load("runs/sales")

A model directory, written by ``save`` or by the command line alike, holds model.safetensors (the
network's state dict), config.json (the task, the hyperparameters, and what fit learned from the data:
vocabulary, scales, class names) and, once evaluated, metrics.json and the plots.
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from lstmkit import __version__
from lstmkit.config import defaults_of
from lstmkit.errors import InputError, NotFittedError
from lstmkit.files import write_atomic
from lstmkit.train import distributed
from lstmkit.train.checkpoint import CONFIG_FILE, MODEL_FILE, load_model, load_weights, read_json, save_model
from lstmkit.train.loop import LoopState, TrainConfig, Trainer

METRICS_FILE = "metrics.json"
LOSS_CURVE_FILE = "loss_curve.png"
LAYOUT = 2  # of config.json: {"task", "lstmkit_version", "layout", "hyperparameters", "fitted"}


class Estimator:
    """Base of the task estimators. A subclass sets ``task`` and ``Config`` and writes ``fit``,
    ``predict``, ``evaluate`` and ``gates``, plus three hooks for save and load: ``_fitted_state`` (what fit
    learned from the data, as JSON), ``_restore_fitted`` (its inverse) and ``_build_network``."""

    task: ClassVar[str]  # the registry's name, and config.json's "task"
    Config: ClassVar[type[TrainConfig]]  # the hyperparameters, training settings included
    loss_name: ClassVar[str] = "loss"  # the training loss, for the loss curve's axis
    unit: ClassVar[str] = "items"  # what the progress bar counts per second

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "Config" in cls.__dict__:  # help() and notebooks show the real keyword arguments
            training = set(TrainConfig.__dataclass_fields__)
            names = sorted(cls.Config.__dataclass_fields__, key=lambda name: name in training)  # model first
            defaults = defaults_of(cls.Config)
            keyword = inspect.Parameter.KEYWORD_ONLY
            required = [inspect.Parameter(n, keyword) for n in names if n not in defaults]
            optional = [inspect.Parameter(n, keyword, default=defaults[n]) for n in names if n in defaults]
            cls.__signature__ = inspect.Signature([*required, *optional])

    def __init__(self, **hyperparameters) -> None:
        self.config = self.Config.from_config(hyperparameters)
        self.network: nn.Module | None = None  # the trained network, once fitted or loaded
        self.training_state: LoopState | None = None  # how the last fit went (steps, best step, history)
        self.metrics: dict[str, Any] | None = None  # the last evaluate()'s result
        self.directory: Path | None = None  # where it was loaded from
        self.fit_seconds = 0.0  # from the start of fit to the end of the last evaluation, for metrics.json
        self._fit_started: float | None = None

    # ---- hyperparameters, as scikit-learn has them ----------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return self.config.to_config()

    def set_params(self, **hyperparameters):
        self.config = self.config.updated(**hyperparameters)
        return self

    def __repr__(self) -> str:
        defaults, values = defaults_of(self.Config), self.config.to_config()
        order = inspect.signature(type(self)).parameters  # the model's own hyperparameters first
        given = {k: values[k] for k in order if k not in defaults or defaults[k] != values[k]}
        text = f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in given.items())})"
        return text if self.network is None else f"{text}  # fitted: {self._describe_fitted()}"

    def _describe_fitted(self) -> str:
        return f"{sum(p.numel() for p in self.network.parameters()):,} parameters"

    # ---- training -------------------------------------------------------------------------------------
    def _configure(self, training: dict[str, Any], checkpoint_dir=None, resume: bool = False) -> None:
        """Training settings given to ``fit`` (minutes=2, seed=1) update the hyperparameters."""
        if resume and checkpoint_dir is None:
            raise InputError("resume=True needs checkpoint_dir=, the directory that holds the checkpoint")
        if training:
            self.config = self.config.updated(**training)
        self._fit_started = time.monotonic()

    def _trainer(
        self, job, checkpoint_dir: str | Path | None, verbose: bool, config: TrainConfig | None = None
    ):
        """The Trainer for JOB's network (CONFIG: the estimator's unless given, as for an ensemble's
        members), checkpoints in CHECKPOINT_DIR (None: none), its progress shown when VERBOSE."""
        progress = "auto" if verbose else "off"
        return Trainer(job, config or self.config, checkpoint_dir, unit=self.unit, progress=progress)

    def _finish_fit(self, network: nn.Module, state: LoopState) -> None:
        self.network, self.training_state, self.metrics = network.eval(), state, None

    def _record(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Keep METRICS as the last evaluation's (and the time since fit began, for metrics.json)."""
        self.metrics = metrics
        if self._fit_started is not None:
            self.fit_seconds = time.monotonic() - self._fit_started
        return metrics

    def _check_fitted(self) -> nn.Module:
        if self.network is None:
            name = type(self).__name__
            raise NotFittedError(f"this {name} is not fitted yet: call fit(...) first, or {name}.load(DIR)")
        return self.network

    # ---- hooks for save and load ----------------------------------------------------------------------
    def _fitted_state(self) -> dict[str, Any]:
        """What fit learned from the data (vocabulary, scales, class names), as JSON."""
        raise NotImplementedError

    def _restore_fitted(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _build_network(self) -> nn.Module:
        """The untrained network that the hyperparameters and the fitted state describe."""
        raise NotImplementedError

    def _plots(self, directory: Path) -> list[Path]:
        """The task's own pictures of its last evaluation (the forecast plot), written into DIRECTORY."""
        return []

    # ---- the model directory ----------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """What metrics.json holds: the last evaluate()'s metrics, and how the model was trained."""
        if self.metrics is None:
            raise NotFittedError(f"no metrics yet: call {type(self).__name__}.evaluate(...) first")
        state = self.training_state
        run = {
            "task": self.task,
            "seed": self.config.seed,
            "world_size": distributed.world_size(),
            "wall_time_s": round(self.fit_seconds, 1),
            "lstmkit_version": __version__,
        }
        if state is not None:
            run["training"] = {
                "steps": state.step,
                "best_step": state.best_step,
                "stopped": state.stopped,
                "precision": state.precision,
                "config": self.config.training().to_config(),
            }
        clash = sorted(set(self.metrics) & set(run))
        if clash:
            raise ValueError(f"task metrics may not use the report's own keys: {', '.join(clash)}")
        return {**self.metrics, **run}

    def save(self, directory: str | Path) -> list[Path]:
        """Write the model directory (created if needed): model.safetensors and config.json, and, once
        evaluated, metrics.json; after a fit in this session the loss curve; the task's plots. Returns the
        files written. A directory written here is what the command line writes, and the other way round."""
        network = self._check_fitted()
        directory = prepare_out_dir(directory)
        config = {
            "task": self.task,
            "lstmkit_version": __version__,
            "layout": LAYOUT,
            "hyperparameters": self.config.to_config(),
            "fitted": self._fitted_state(),
        }
        save_model(directory, network, config)
        written = [directory / MODEL_FILE, directory / CONFIG_FILE]
        if self.metrics is not None:
            write_atomic(directory / METRICS_FILE, json.dumps(self.report(), indent=2) + "\n")
            written.append(directory / METRICS_FILE)
        if self.training_state is not None and self.training_state.history["step"]:
            from lstmkit.plots.plots import plot_loss_curve  # matplotlib only when a picture is drawn

            title = f"lstmkit {self.task}: training curve"
            plot_loss_curve(self.training_state.history, directory / LOSS_CURVE_FILE, title, self.loss_name)
            written.append(directory / LOSS_CURVE_FILE)
        if self.metrics is not None:
            written += self._plots(directory)
        return written

    @classmethod
    def load(cls, directory: str | Path):
        """The estimator saved in DIRECTORY (by ``save`` or a 'train' command); InputError naming the file
        if it is another task's, damaged, or its weights do not fit its config."""
        directory = Path(directory)
        record, tensors = load_model(directory, cls.task)
        path = directory / CONFIG_FILE
        if record.get("layout") != LAYOUT:
            raise InputError(
                f"{path}: written by lstmkit {record.get('lstmkit_version', '?')} in another layout; "
                f"train the model again with lstmkit {__version__}"
            )
        try:
            estimator = cls(**record["hyperparameters"])
        except (TypeError, ValueError) as error:
            raise InputError(f"{path}: {error}; it is damaged or from another version: train again") from None
        estimator.directory = directory
        estimator._restore_fitted(record["fitted"])
        estimator.network = load_weights(estimator._build_network(), tensors, directory).eval()
        if (directory / METRICS_FILE).is_file():
            metrics = dict(read_json(directory / METRICS_FILE))
            estimator.metrics = {k: v for k, v in metrics.items() if k not in RUN_KEYS}
        return estimator


RUN_KEYS = ("task", "seed", "world_size", "wall_time_s", "lstmkit_version", "training")


def check_out_dir(out_dir: str | Path) -> Path:
    """InputError if OUT_DIR exists and is not a directory; it is created when something is written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a directory; choose another output directory (--out)")
    return out_dir


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create the output directory if needed; InputError if it cannot be one."""
    out_dir = check_out_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output directory {out_dir}: {error.strerror}") from None
    return out_dir


def load_estimator(directory: str | Path):
    """The estimator in a model directory of any task: ``lstmkit.load("runs/air")``."""
    from lstmkit.tasks import registry

    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory; give the --out directory of a 'train' command")
    task = read_json(directory / CONFIG_FILE).get("task")
    known = {t.name: t.estimator for t in registry.estimator_tasks()}
    if task not in known:
        raise InputError(
            f"{directory / CONFIG_FILE}: task {task!r} is not one lstmkit knows ({', '.join(known)})"
        )
    return known[task].load(directory)
