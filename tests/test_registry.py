"""The task registry: the command line is built from it, every estimator's command names its class, and no
task module imports another (what two tasks share lives in a module of its own)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lstmkit
from lstmkit.cli import build_parser
from lstmkit.tasks import registry

TASKS_DIR = Path(lstmkit.__file__).parent / "tasks"


def task_modules() -> dict[str, Path]:
    """Module name -> file, for the modules that register a task."""
    found = {}
    for path in sorted(TASKS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Task"]
        if calls:
            found[path.stem] = path
    return found


def test_every_task_module_registers_and_none_imports_another():
    modules = task_modules()
    assert set(modules) == {
        "charlm",
        "classify",
        "demo",
        "forecast",
        "inspect",
        "memory",
        "sentiment",
        "wordlm",
    }
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        others = {f"lstmkit.tasks.{other}" for other in modules if other != name}
        assert not imported & others, f"tasks/{name}.py imports {imported & others}"


def test_the_command_line_is_the_registry():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == {task.name for task in registry.tasks()} | {"build"}
    estimators = {task.name: task.estimator for task in registry.estimator_tasks()}
    assert estimators == {
        "charlm": lstmkit.CharLM,
        "forecast": lstmkit.Forecaster,
        "sentiment": lstmkit.TextClassifier,
        "classify": lstmkit.SeriesClassifier,
        "wordlm": lstmkit.WordLM,
    }
    for name, estimator in estimators.items():
        assert estimator.task == name
        assert f"lstmkit.{estimator.__name__}" in commands[name].format_help()  # --help names the class
        actions = next(a for a in commands[name]._actions if a.dest == "action").choices
        assert "train" in actions
        for action, parser in actions.items():  # train, predict, sample, eval
            assert f"From Python: lstmkit.{estimator.__name__}" in parser.format_help(), (name, action)


@pytest.mark.parametrize(
    "estimator", [lstmkit.CharLM, lstmkit.Forecaster, lstmkit.TextClassifier, lstmkit.WordLM]
)
def test_train_options_are_the_constructors_hyperparameters_with_its_defaults(estimator):
    """Every hyperparameter is a --flag of '<task> train' with the constructor's default, and parsing
    nothing but the required arguments gives the estimator's own defaults."""
    required = {
        "forecast": ["data.csv", "--horizon", "3"],
        "charlm": ["t.txt"],
        "sentiment": [],
        "wordlm": ["t.txt"],
    }[estimator.task]
    args = build_parser().parse_args([estimator.task, "train", *required, "--out", "o"])
    defaults = estimator(**({"horizon": 3} if estimator is lstmkit.Forecaster else {})).get_params()
    assert {name: getattr(args, name) for name in defaults} == defaults
