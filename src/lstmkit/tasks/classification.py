"""What the classification tasks (text and numeric series) share: the classifier's hyperparameters, the
training job, an ensemble trained member by member, and the metrics. Not a task itself."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lstmkit import class_baselines
from lstmkit.config import POSITIVE_INT, RATE, option
from lstmkit.errors import InputError
from lstmkit.models.classifier import (
    POOLINGS,
    Ensemble,
    SequenceClassifier,
    build_classifier,
    pad_batch,
    predict_logits,
)
from lstmkit.tasks.estimator import Estimator
from lstmkit.train import distributed
from lstmkit.train.checkpoint import STATE_FILE, load_tensors
from lstmkit.train.loop import LoopState, TrainConfig, Trainer
from lstmkit.train.metrics import accuracy, per_class_scores


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig(TrainConfig):
    """The classifier's size and regularisation; each task sets its own defaults (``with_defaults``)."""

    hidden_size: int = option(128, "LSTM units per direction", POSITIVE_INT)
    num_layers: int = option(1, "stacked LSTM layers", POSITIVE_INT, flag="--layers")
    pooling: str = option(
        "last",
        "how the LSTM's outputs become one vector: " + "; ".join(f"{k}: {v}" for k, v in POOLINGS.items()),
        choices=tuple(POOLINGS),
    )
    dropout: float = option(0.5, "dropout rate, from 0 to below 1", RATE, metavar="P")
    batch_size: int = option(64, "sequences per training step", POSITIVE_INT)
    members: int = option(
        1,
        "networks trained one after another, each from its own seed; their logits are averaged "
        "(an ensemble: N times the training time)",
        POSITIVE_INT,
    )
    baselines: bool = option(
        True,
        "also fit the classifiers a user would otherwise use on the same training examples and report "
        "them beside the LSTM (texts: TF-IDF + logistic regression; series: 1-NN and MiniRocket)",
        group="training",
    )


@dataclass
class Examples:
    inputs: list[Tensor]  # each (T_i,) token ids or (T_i, F) values
    labels: Tensor  # (N,) class indices


class ClassificationJob:
    """The Trainer's job: shuffled batches of similar length, cross-entropy, validation loss."""

    BUCKET = 50  # batches sorted by length together: less padding, still a fresh mix every epoch

    def __init__(
        self, model: SequenceClassifier | Ensemble, train: Examples, val: Examples, batch_size: int, seed: int
    ):
        self.model, self.train, self.val = model, train, val
        self.batch_size, self.seed = batch_size, seed

    def batches(self, epoch: int) -> list[list[int]]:
        """Index lists, the same for the same seed and epoch."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.train.inputs), generator=generator).tolist()
        chunk, batches = self.batch_size * self.BUCKET, []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: len(self.train.inputs[i]))
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def loss(self, batch: list[int]) -> tuple[Tensor, int]:
        inputs, lengths = pad_batch([self.train.inputs[i] for i in batch])
        logits = self.model(inputs, lengths)  # (B, 1) or (B, C)
        return self.model.loss(logits, self.train.labels[batch]), len(batch)

    def validate(self) -> float:
        """Mean validation loss; under torchrun each rank scores its share of the examples."""
        part = list(distributed.items(range(len(self.val.labels))))
        logits = predict_logits(self.model, [self.val.inputs[i] for i in part])
        loss = self.model.loss(logits, self.val.labels[part]).item() if part else 0.0
        return distributed.weighted_mean(loss, len(part))


def classification_metrics(predicted: Tensor, actual: Tensor, names: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix (rows: actual class)."""
    counts = torch.zeros(len(names), len(names), dtype=torch.long)
    counts.index_put_((actual, predicted), torch.ones_like(actual), accumulate=True)
    return {
        "accuracy": accuracy(predicted, actual),
        "per_class": per_class_scores(predicted, actual, names),
        "confusion_matrix": {
            "classes": names,
            "rows": "actual",
            "columns": "predicted",
            "counts": counts.tolist(),
        },
        "test_size": len(actual),
    }


def member_seed(seed: int, member: int) -> int:
    """The seed of an ensemble's MEMBER (from 0): the run's own for the first, far from other runs' after."""
    return (seed + member * 1_000_003) % 2**32


def label_ids(labels, names: list[str], source: str, lines: list[int] | None = None) -> Tensor:
    """Class indices of LABELS (class names, or numbers that name them) among NAMES; InputError for a
    class the model does not know."""
    index = {name: k for k, name in enumerate(names)}
    ids = []
    for n, label in enumerate(labels):
        name = label if isinstance(label, str) else format_label(label)
        if name not in index:
            where = f"line {lines[n]}" if lines else f"label {n + 1}"
            raise InputError(
                f"{source}: {where}: class {name!r} is not one the model knows ({', '.join(names)})"
            )
        ids.append(index[name])
    return torch.tensor(ids, dtype=torch.long)


def format_label(label) -> str:
    """A label given from Python as its class name: 1 and 1.0 -> "1", anything else as str()."""
    if isinstance(label, (int, np.integer)) or (
        isinstance(label, (float, np.floating)) and float(label).is_integer()
    ):
        return str(int(label))
    return str(label)


FIT_FACTS = ("class_names", "train_size", "validation_size", "validation_loss")  # saved with the model


class ClassifierEstimator(Estimator):
    """An ensemble of bidirectional LSTM classifiers (one network for members=1), trained member by member.

    A subclass reads its data: ``_labelled(data, labels, **reading) -> (inputs, label ids, source, raw)``
    turns what the user holds into the network's inputs (token ids, or windows of values) after fit has
    set the vocabulary or the scales, and into what the baselines read (RAW: the texts, or the scaled
    values); ``_network_options`` says how the inputs enter the network; ``_make_baselines(raw, ids)``
    fits the task's baselines (``class_baselines``)."""

    unit = "sequences"
    loss_name = "cross-entropy"

    def __init__(self, **hyperparameters) -> None:
        super().__init__(**hyperparameters)
        self.baselines: list[class_baselines.Baseline] = []  # fitted with the network, never saved
        self.baseline_notes: list[str] = []  # why a baseline did not run
        self.read_as = ""  # how the training table was read (delimiter, quoting), when it was one

    def _make_baselines(self, raw, ids: list[int]) -> tuple[list[class_baselines.Baseline], list[str]]:
        raise NotImplementedError

    def _fit_baselines(self, raw, ids: list[int]) -> None:
        """The task's baselines on the training examples RAW with class indices IDS (with ``baselines``)."""
        self.baselines, self.baseline_notes = [], []
        if self.config.baselines:
            self.baselines, self.baseline_notes = self._make_baselines(raw, ids)

    def _network_options(self) -> dict[str, Any]:
        raise NotImplementedError

    def _network_config(self) -> dict[str, Any]:
        """SequenceClassifier's arguments for one network."""
        cfg = self.config
        return {
            "num_classes": len(self.class_names),
            "hidden_size": cfg.hidden_size,
            "num_layers": cfg.num_layers,
            "pooling": cfg.pooling,
            "dropout": cfg.dropout,
            **self._network_options(),
        }

    def _build_network(self) -> SequenceClassifier | Ensemble:
        return build_classifier({**self._network_config(), "members": self.config.members})

    def _fit_members(
        self,
        splits: Callable[[int], tuple[Examples, Examples]],
        checkpoint_dir: str | Path | None,
        resume: bool,
        verbose: bool,
    ) -> None:
        """Train the members one after another, member k from its own seed on SPLITS(k) (training and
        validation examples), checkpoints of the first in CHECKPOINT_DIR and of member k in its
        member-k subfolder; on resume, members already trained to the end are loaded, not trained."""
        cfg, count = self.config, self.config.members
        networks, states, sizes = [], [], None
        for k in range(count):
            seed = member_seed(cfg.seed, k)
            torch.manual_seed(seed)
            network = SequenceClassifier(**self._network_config())
            train, val = splits(k)
            sizes = sizes or (len(train.labels), 0 if val is train else len(val.labels))
            job = ClassificationJob(network, train, val, cfg.batch_size, seed)
            member_dir = None
            if checkpoint_dir is not None:
                member_dir = Path(checkpoint_dir) / f"member-{k + 1}" if k else Path(checkpoint_dir)
            trainer = self._trainer(job, member_dir, verbose, cfg.updated(seed=seed))
            done = resume and count > 1 and finished_member(trainer)
            resumed = resume and (k == 0 or (member_dir / STATE_FILE).is_file())
            states.append(done or trainer.fit(resumed))
            networks.append(network)
        network = networks[0] if count == 1 else Ensemble.of(networks)
        self.train_size, self.validation_size = sizes
        self.validation_loss = statistics.mean(state.best for state in states)  # each on its own split
        self._finish_fit(network, states[0])

    def _logits(self, inputs: list[Tensor]) -> Tensor:
        return predict_logits(self._check_fitted(), inputs)

    def predict_proba(self, data, **reading) -> np.ndarray:
        """Class probabilities (N, C), the columns in the order of ``class_names``."""
        inputs, *_ = self._labelled(data, None, **reading)
        return SequenceClassifier.probabilities(self._logits(inputs)).numpy()

    def predict(self, data, **reading) -> list[str]:
        """The likeliest class of each example, by name."""
        return [self.class_names[k] for k in self.predict_proba(data, **reading).argmax(axis=1)]

    def evaluate(self, data, labels=None, **reading) -> dict[str, Any]:
        """Accuracy, per-class precision, recall, F1 and support, and the confusion matrix on DATA with
        its LABELS (or the labels DATA holds); with how the model was trained (sizes, validation loss), and
        the baselines' accuracy on the same examples ("baselines", "winner")."""
        inputs, actual, source, raw = self._labelled(data, labels, **reading)
        if actual is None:
            raise InputError(f"{source}: has no labels; evaluate() needs labelled examples")
        if not len(actual):
            raise InputError(
                "the test split is empty; give more examples of each class (or a test fraction > 0)"
            )
        predicted = SequenceClassifier.probabilities(self._logits(inputs)).argmax(dim=1)
        scores = classification_metrics(predicted, actual, self.class_names)
        baselines = class_baselines.score_baselines(self.baselines, raw, actual.numpy())
        self._record(
            {
                **scores,
                "train_size": self.train_size,
                "validation_size": self.validation_size,  # 0: validated on the training set
                "validation_loss": self.validation_loss,  # the members' mean, each on its own split
                "baselines": baselines,
                "baseline_notes": self.baseline_notes,
                "winner": class_baselines.verdict(scores["accuracy"], baselines) if baselines else None,
                **({"training_file_read_as": self.read_as} if self.read_as else {}),
            }
        )
        self.predicted = predicted
        return self.metrics

    def summary(self, headline: str) -> str:
        """HEADLINE, the last evaluation's per-class scores as a table, then the baselines and the winner."""
        lines = [headline, f"  {'class':<12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
        for name, scores in self.metrics["per_class"].items():
            lines.append(
                f"  {name:<12} {scores['precision']:>9.3f} {scores['recall']:>7.3f} {scores['f1']:>7.3f} "
                f"{scores['support']:>8}"
            )
        baselines = self.metrics.get("baselines") or {}
        if baselines:
            lines.append("baselines on the same training and test examples:")
            for scores in baselines.values():
                lines.append(
                    f"  {scores['title']:<45} accuracy {scores['accuracy']:.4f}  "
                    f"({scores['fit_seconds'] + scores['predict_seconds']:.1f} s)"
                )
            lines.append(self.metrics["winner"])
        lines += [f"note: {note}" for note in self.metrics.get("baseline_notes", [])]
        return "\n".join(lines)

    def _class_summary(self, inputs: Tensor) -> str:
        """'predicted: class pos, probability 0.93 (other classes: neg 0.07)' for one sequence."""
        names = self.class_names
        logits = self._check_fitted()(inputs[None], torch.tensor([len(inputs)]))  # (1, 1) or (1, C)
        probs = SequenceClassifier.probabilities(logits)[0].tolist()
        best = max(range(len(names)), key=probs.__getitem__)
        others = ", ".join(f"{name} {p:.2f}" for name, p in zip(names, probs) if name != names[best])
        return f"predicted: class {names[best]}, probability {probs[best]:.2f} (other classes: {others})"

    def _describe_fitted(self) -> str:
        return f"classes {', '.join(self.class_names)}, {self.config.members} network(s)"

    def _fitted_state(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in FIT_FACTS}, **self._reading_state()}

    def _restore_fitted(self, state: dict[str, Any]) -> None:
        for name in FIT_FACTS:
            setattr(self, name, state[name])
        self._restore_reading(state)
        self.baselines = []
        if self.config.baselines:
            self.baseline_notes = ["the baselines are fitted with the model and not saved; fit it to compare"]

    def _reading_state(self) -> dict[str, Any]:
        """How the task reads its data (the vocabulary; the series' length and scales), as JSON."""
        raise NotImplementedError

    def _restore_reading(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


def finished_member(trainer: Trainer) -> LoopState | None:
    """For --resume: the loop state of an ensemble member that an earlier run trained to the end, with its
    best weights put in the trainer's model; None when its directory holds no finished training."""
    if trainer.out_dir is None:
        return None
    path = trainer.out_dir / STATE_FILE
    meta = load_tensors(path)[1] if path.is_file() else {}
    if not meta.get("loop", {}).get("stopped"):
        return None
    trainer.load_checkpoint()  # checks that the checkpoint is this run's
    if trainer.best_weights is not None:
        trainer.job.model.load_state_dict(trainer.best_weights)
    return LoopState(**meta["loop"])
