"""Hyperparameters: dataclass fields that carry their own check, help text and command-line flag.

One declaration serves both doors: ``Forecaster(hidden_size=64)`` checks the value (ValueError naming the
field), and ``lstmkit forecast train --hidden-size 64`` gets its option, help and default from the same
field (argparse's one-line usage error naming the flag):

    @dataclass(frozen=True)
    class ModelConfig(Hyperparameters):
        hidden_size: int = option(32, "LSTM units", POSITIVE_INT)
"""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

H = TypeVar("H", bound="Hyperparameters")


def number(text: str) -> float:
    """The number TEXT spells, or NaN where it spells none (every range check then fails)."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


@dataclass(frozen=True)
class Kind:
    """What values a hyperparameter takes: whole numbers or real ones, within ``accepts``."""

    description: str  # completes "must be ...": "a positive number"
    whole: bool  # int, or float
    accepts: Callable[[float], bool]

    def parse(self, text: str):
        """argparse's ``type=``: the value TEXT spells, or ArgumentTypeError."""
        value = (int(text) if text.isdigit() else None) if self.whole else number(text)
        if value is None or not self.accepts(value):
            raise argparse.ArgumentTypeError(f"must be {self.description}, got {text!r}")
        return value

    def check(self, name: str, value):
        """A value given from Python: the same rule, a ValueError naming the field."""
        whole = isinstance(value, int) and not isinstance(value, bool)
        real = whole or isinstance(value, float)
        if not (whole if self.whole else real) or not self.accepts(value):
            raise ValueError(f"{name} must be {self.description}, got {value!r}")
        return value if self.whole else float(value)


POSITIVE = Kind("a positive number", False, lambda v: 0 < v < math.inf)
FINITE = Kind("a finite number", False, lambda v: abs(v) < math.inf)
NON_NEGATIVE = Kind("a number >= 0", False, lambda v: 0 <= v < math.inf)
RATE = Kind("a number from 0 to below 1", False, lambda v: 0 <= v < 1)
POSITIVE_INT = Kind("a whole number >= 1", True, lambda v: v >= 1)
NATURAL = Kind("a whole number >= 0", True, lambda v: v >= 0)
SEED = Kind(f"a whole number from 0 to {2**32 - 1}", True, lambda v: 0 <= v < 2**32)


REQUIRED = MISSING  # the default of a hyperparameter that has none: it must be given


def option(
    default,
    help: str,
    kind: Kind | None = None,
    *,
    choices: tuple[str, ...] | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    group: str = "model",
) -> Any:
    """A hyperparameter field: its default, one line of help, and its ``kind`` (or ``choices``).
    ``flag`` (default ``--field-name``) is its command-line option, shown in ``group``; a default of None
    means "chosen from the data" (or "no limit") and is never given on the command line."""
    meta = {"help": help, "kind": kind, "choices": choices, "flag": flag, "metavar": metavar, "group": group}
    if default is REQUIRED:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class Hyperparameters:
    """Base of the config dataclasses: every field checked on construction; one ``to_config`` and one
    ``from_config`` for every task (what config.json holds), and the command-line options."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if value is None and f.default is None:
                continue
            if meta.get("choices") and value not in meta["choices"]:
                raise ValueError(f"{f.name} must be one of {', '.join(meta['choices'])}; got {value!r}")
            if meta.get("kind"):
                object.__setattr__(self, f.name, meta["kind"].check(f.name, value))
            elif isinstance(f.default, bool) and not isinstance(value, bool):
                raise ValueError(f"{f.name} must be True or False, got {value!r}")

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_config(cls: type[H], record: dict[str, Any]) -> H:
        """The config of RECORD; ValueError naming a key it does not know (or, from ``check_names``)."""
        check_names(cls, record)
        return cls(**record)

    def updated(self: H, **changes) -> H:
        check_names(type(self), changes)
        return replace(self, **changes)


def check_names(cls: type[Hyperparameters], given: dict[str, Any]) -> None:
    """TypeError for a name that is not a field of CLS, suggesting the closest one."""
    known = [f.name for f in fields(cls)]
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            raise TypeError(f"{cls.__name__} has no hyperparameter {name!r}{hint}")


def with_defaults(**defaults) -> Callable[[type[H]], type[H]]:
    """Class decorator: a frozen dataclass whose inherited fields named in DEFAULTS get new defaults,
    keeping their checks and help (each task's training settings start where suit it)."""

    def decorate(cls: type[H]) -> type[H]:
        inherited = {f.name: f for f in fields(cls)}
        annotations = cls.__dict__.get("__annotations__", {})
        cls.__annotations__ = annotations
        for name, value in defaults.items():
            base = inherited[name]
            annotations[name] = base.type
            setattr(cls, name, field(default=value, metadata=base.metadata))
        return dataclass(frozen=True, kw_only=True)(cls)

    return decorate


def defaults_of(cls: type[Hyperparameters]) -> dict[str, Any]:
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def flag_of(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_arguments(
    parser: argparse.ArgumentParser, cls: type[Hyperparameters], titles: dict[str, str]
) -> dict[str, argparse._ArgumentGroup]:
    """One option per field of CLS, in argument groups titled by TITLES (group name -> title); returns
    the groups, for the caller's other options."""
    groups = {name: parser.add_argument_group(title) for name, title in titles.items()}
    for f in fields(cls):
        meta = f.metadata
        if "help" not in meta:
            continue
        kind, choices = meta["kind"], meta["choices"]
        required = f.default is MISSING
        shown = "" if f.default is None or required else " (default: %(default)s)"
        options = {"dest": f.name, "help": meta["help"] + shown}
        options.update({"required": True} if required else {"default": f.default})
        if choices:
            options["choices"] = choices
        elif isinstance(f.default, bool):  # a switch: --name / --no-name
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = kind.parse
            options["metavar"] = meta["metavar"] or ("N" if kind.whole else "X")
        groups[meta["group"]].add_argument(flag_of(f), **options)
    return groups


def from_arguments(cls: type[H], args: argparse.Namespace) -> H:
    """The config that the parsed command line gives (its fields by ``dest``)."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})
