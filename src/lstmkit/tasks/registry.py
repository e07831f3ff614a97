"""The task registry: every command of ``lstmkit`` and, for the jobs that train a model, its estimator.

A task module registers one ``Task`` when it is imported: its name (the command, and the "task" that a
model directory's config.json names), a line of help, the function that adds its sub-commands to the
parser, and its estimator class (None for commands that train nothing, such as ``demo`` or ``inspect``).
``cli.py`` builds the command line from the registry, ``lstmkit inspect`` and ``lstmkit.load`` find a model
directory's estimator through it, and ``lstmkit demo`` its character model. No task imports another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    name: str  # the command: lstmkit NAME ...
    help: str  # one line, in 'lstmkit --help'
    add_commands: Callable[[Any], None]  # given the parser of 'lstmkit NAME', adds its options or actions
    estimator: type | None = None  # the Python class behind the command, for tasks that train a model
    description: str = ""  # 'lstmkit NAME --help' (default: the help line)
    reads: str = ""  # for 'lstmkit inspect --help': what TEXT is for a model of this task


_REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.name in _REGISTRY:
        raise ValueError(f"a task named {task.name!r} is registered already")
    _REGISTRY[task.name] = task
    return task


def tasks() -> list[Task]:
    """Every registered task, in the order they registered."""
    return list(_REGISTRY.values())


def get(name: str) -> Task:
    if name not in _REGISTRY:
        raise KeyError(f"no task {name!r}; tasks: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def estimator_tasks() -> list[Task]:
    """The tasks that train a model (their directories can be loaded, inspected, predicted with)."""
    return [task for task in _REGISTRY.values() if task.estimator is not None]
