"""Checkpoints: tensors in safetensors, everything else JSON; each file written atomically; never pickle.

A trained model is ``DIR/model.safetensors`` (the state dict) plus ``DIR/config.json`` (the task, the
model's constructor arguments, its vocabulary or scaler). A run's resumable state is one file,
``DIR/checkpoint.safetensors``: model and optimizer tensors and the torch random state, with the loop's
position, the optimizer's other settings and the Python random state as JSON in its metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from lstmkit.errors import InputError
from lstmkit.files import write_atomic

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "checkpoint.safetensors"
_META_KEY = "lstmkit"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
    """Write tensors (and JSON-able ``meta``) to one safetensors file, atomically."""
    plain = {name: t.detach().cpu().contiguous().clone() for name, t in tensors.items()}
    metadata = None if meta is None else {_META_KEY: json.dumps(meta)}
    write_atomic(path, save_safetensors(plain, metadata=metadata))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by ``save_tensors``; InputError naming the file if it is missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; train a model first or check the directory")
    data = path.read_bytes()
    try:
        tensors = load_safetensors(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        meta = json.loads(header.get("__metadata__", {}).get(_META_KEY, "{}"))
    except (SafetensorError, ValueError, UnicodeDecodeError) as error:
        raise InputError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {str(error).splitlines()[0]}); "
            "train again or restore the file"
        ) from None
    return tensors, meta


class JSONObject(dict):
    """A JSON object read from a file: a missing key is an InputError naming the file and the key."""

    def __init__(self, items, path: Path):
        super().__init__(items)
        self.path = path

    def __missing__(self, key: str):
        raise InputError(f"{self.path}: has no {key!r}; it is damaged or from another version: train again")


def read_json(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: no such file; is {path.parent} a directory written by 'lstmkit ... train'?"
        )
    try:
        value = json.loads(
            path.read_text(encoding="utf-8"), object_hook=lambda items: JSONObject(items, path)
        )
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({error}); train again or restore the file") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def brief(error: Exception) -> str:
    """An exception's message on one line, at most 200 characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."


def load_weights(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], model_dir: Path
) -> torch.nn.Module:
    """MODEL with the weights of a trained model directory; InputError if they do not fit its config."""
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        raise InputError(
            f"{model_dir}: {MODEL_FILE} does not fit {CONFIG_FILE} ({brief(error)}); train again or restore "
            "the files"
        ) from None
    return model


def save_model(out_dir: Path, model: torch.nn.Module, config: dict[str, Any]) -> None:
    """Write DIR/model.safetensors and DIR/config.json."""
    save_tensors(Path(out_dir) / MODEL_FILE, model.state_dict())
    write_atomic(Path(out_dir) / CONFIG_FILE, json.dumps(config, indent=2) + "\n")


def load_model(model_dir: Path, task: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a trained model's config and state dict, checking that it belongs to ``task``."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(
            f"{model_dir}: no such directory; pass the --out directory of 'lstmkit {task} train'"
        )
    config = read_json(model_dir / CONFIG_FILE)
    if config.get("task") != task:
        raise InputError(
            f"{model_dir}: holds a {config.get('task', 'unknown')!r} model, not a {task!r} one; "
            f"use 'lstmkit {config.get('task', '...')} ...' or another directory"
        )
    tensors, _ = load_tensors(model_dir / MODEL_FILE)
    return config, tensors


def optimizer_to_tensors(state: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (``optim.{param}.{name}``) and JSON-able rest."""
    tensors, scalars = {}, {}
    for param_id, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim.{param_id}.{name}"] = value
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    """Inverse of ``optimizer_to_tensors``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = value
    for param_id, entries in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}
