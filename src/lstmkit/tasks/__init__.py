"""The jobs: each module registers one task (a command, and for the jobs that train a model the estimator
behind it) with ``lstmkit.tasks.registry``. Adding a task is one module and one line here."""

from lstmkit.tasks import charlm, classify, demo, forecast, inspect, memory, sentiment, wordlm  # noqa: F401
from lstmkit.tasks.registry import Task, get, register, tasks

__all__ = ["Task", "get", "register", "tasks"]
