"""End-to-end jobs: data -> model -> training -> report."""

from lstmkit.tasks.demo import run_demo

__all__ = ["run_demo"]
