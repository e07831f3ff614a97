"""Backends: interchangeable implementations of the recurrence, chosen by name or "auto"."""

from lstmkit.backend import bptt, cpu, reference  # noqa: F401  (registering)
from lstmkit.backend.registry import Backend, LayerResult, StepPath, available, register, resolve

__all__ = ["Backend", "LayerResult", "StepPath", "available", "register", "resolve"]
