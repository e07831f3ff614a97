"""The UEA/UCR archive's own formats, as it ships them: ``.ts`` (sktime/aeon's format: header tags, then
one case a line, its dimensions separated by ":", the class label last) and ``.arff`` (Weka's: one numeric
attribute per time step, or a relational attribute holding the dimensions, then the class).

Both give every case as (C, T_i) values, missing values written "?", lengths that may differ. A case is
as long as its last step with a value in any dimension; missing values before that are filled by linear
interpolation along the time axis (the nearest value at either end), and the reader counts them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.data.labelled_text import read_text_file, text_lines
from lstmkit.errors import InputError

MISSING = ("?", "nan", "NaN")
COMMENTS = ("#", "%")  # .ts files in the wild start comment lines with either


@dataclass
class ArchiveSeries:
    values: np.ndarray  # (N, C, T) float32, NaN after each case's length
    lengths: np.ndarray  # (N,) steps of each case
    labels: list[str] | None  # None when the file has no class labels
    lines: list[int]  # the line of the file each case comes from
    filled: int  # missing values filled inside the cases
    read_as: str  # what the report says of the file


def read_archive(path: Path) -> ArchiveSeries:
    """A ``.ts`` or ``.arff`` file, by its suffix."""
    text = read_text_file(path)
    cases, labels, lines = (read_ts if path.suffix.lower() == ".ts" else read_arff)(path, text)
    if not cases:
        raise InputError(f"{path}: has no cases after its header; give one case a line after @data")
    dimensions = {len(case) for case in cases}
    if len(dimensions) > 1:
        first = next(i for i, case in enumerate(cases) if len(case) != len(cases[0]))
        raise InputError(
            f"{path}: line {lines[first]} has {len(cases[first])} dimensions, line {lines[0]} has "
            f"{len(cases[0])}; every case needs the same dimensions"
        )
    values, lengths, filled = _dense(path, cases, lines)
    kind = "univariate" if values.shape[1] == 1 else f"{values.shape[1]} dimensions"
    span = (
        f"{lengths.min()} to {lengths.max()} steps"
        if lengths.min() < lengths.max()
        else f"{lengths[0]} steps"
    )
    read_as = f"{path.suffix[1:]} format, {len(cases)} cases, {kind}, {span}"
    if filled:
        read_as += f"; {filled} missing values filled by linear interpolation"
    return ArchiveSeries(values, lengths, labels, lines, filled, read_as)


def _dense(path: Path, cases: list[list[list[float]]], lines: list[int]):
    """Cases (each C lists of values, NaN missing) -> (N, C, T) float32 (NaN after each case), lengths
    (N,), the count of values filled."""
    count, channels = len(cases), len(cases[0])
    longest = max(len(dimension) for case in cases for dimension in case)
    values = np.full((count, channels, longest), np.nan, dtype=np.float32)
    lengths, filled = np.zeros(count, dtype=np.int64), 0
    for n, case in enumerate(cases):
        raw = np.full((channels, longest), np.nan)
        for c, dimension in enumerate(case):
            raw[c, : len(dimension)] = dimension
        observed = ~np.isnan(raw)  # (C, T)
        steps = np.flatnonzero(observed.any(axis=0))
        if not len(steps):
            raise InputError(f"{path}: line {lines[n]}: the case has no values; remove it or give its values")
        length = steps[-1] + 1
        for c in range(channels):
            known = np.flatnonzero(observed[c, :length])
            if not len(known):
                raise InputError(
                    f"{path}: line {lines[n]}: dimension {c + 1} has no values; every dimension of a case "
                    "needs at least one"
                )
            filled += length - len(known)
            values[n, c, :length] = np.interp(np.arange(length), known, raw[c, known])
        lengths[n] = length
    return values, lengths, filled


def number(path: Path, line: int, where: str, cell: str) -> float:
    """A value of a case: a finite number, or NaN for a missing one ("?")."""
    cell = cell.strip()
    if cell in MISSING:
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        value = math.inf
    if not math.isfinite(value):
        raise InputError(
            f"{path}: line {line}, {where}: {cell[:30]!r} is not a number; write values as numbers and "
            "missing ones as ?"
        )
    return value


def case_values(path: Path, line: int, dimensions: list[str]) -> list[list[float]]:
    """A case's DIMENSIONS, each "v1,v2,...", as lists of values (NaN for "?")."""
    case = []
    for d, part in enumerate(dimensions, 1):
        if not part.strip():
            raise InputError(f"{path}: line {line}: dimension {d} is empty; write ? for a missing value")
        case.append(
            [
                number(path, line, f"dimension {d}, value {k}", cell)
                for k, cell in enumerate(part.split(","), 1)
            ]
        )
    return case


# ---- .ts ------------------------------------------------------------------------------------------------
def read_ts(path: Path, text: str) -> tuple[list, list[str] | None, list[int]]:
    """Comment lines (# or %), header tags (@problemName, @classLabel true A B ..., @univariate,
    @equalLength, ...) up to @data, then one case a line: ``v1,v2,...:w1,w2,...:label``."""
    tags, body = {}, None
    lines = text_lines(text)
    for number_, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(COMMENTS):
            continue
        if not stripped.startswith("@"):
            raise InputError(
                f"{path}: line {number_}: {stripped[:30]!r} comes before @data; start the data with @data"
            )
        tag, _, value = stripped[1:].partition(" ")
        if tag.lower() == "data":
            body = number_
            break
        tags[tag.lower()] = (value.strip(), number_)
    if body is None:
        raise InputError(f"{path}: no @data line; a .ts file lists its cases after @data")
    if tags.get("timestamps", ("false",))[0].lower() == "true":
        raise InputError(f"{path}: has time stamps (@timeStamps true); give the values without time stamps")
    if tags.get("targetlabel", ("false",))[0].lower() == "true":
        raise InputError(f"{path}: is a regression set (@targetLabel true); classify needs class labels")
    declared = tags.get("classlabel", ("false",))[0].split()
    labelled = bool(declared) and declared[0].lower() == "true"
    classes = set(declared[1:])
    cases, labels, numbers = [], [], []
    for number_, line in enumerate(lines[body:], body + 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(COMMENTS):
            continue
        parts = stripped.split(":")
        if labelled:
            if len(parts) < 2:
                raise InputError(f"{path}: line {number_}: no class label; end the line with :LABEL")
            label, parts = parts[-1].strip(), parts[:-1]
            if classes and label not in classes:
                raise InputError(
                    f"{path}: line {number_}: class {label!r} is not one of the @classLabel classes "
                    f"({', '.join(sorted(classes))})"
                )
            labels.append(label)
        cases.append(case_values(path, number_, parts))
        numbers.append(number_)
    return cases, labels if labelled else None, numbers


# ---- .arff ----------------------------------------------------------------------------------------------
ATTRIBUTE = re.compile(r"@attribute\s+('[^']*'|\"[^\"]*\"|\S+)\s+(.*)", re.IGNORECASE)
NUMERIC = ("numeric", "real", "integer")


def read_arff(path: Path, text: str) -> tuple[list, list[str] | None, list[int]]:
    """@relation, @attribute lines (numeric ones, or one relational attribute whose own numeric attributes
    are the time steps), a last nominal attribute for the class, then @data rows: ``v1,v2,...,label``, or
    ``'v1,v2,...\\nw1,w2,...',label`` for several dimensions."""
    lines = text_lines(text)
    attributes, relational, depth, body = [], False, 0, None
    for number_, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            continue
        lower = stripped.lower()
        if lower.startswith("@data"):
            body = number_
            break
        if lower.startswith("@end"):
            depth -= 1
            continue
        match = ATTRIBUTE.match(stripped)
        if match is None:
            continue  # @relation and the like
        kind = match.group(2).strip()
        if kind.lower().startswith("relational"):
            relational, depth = True, depth + 1
            attributes.append(("relational", number_))
        elif depth == 0:
            attributes.append((kind, number_))
    if body is None:
        raise InputError(f"{path}: no @data line; an .arff file lists its cases after @data")
    if not attributes:
        raise InputError(f"{path}: declares no @attribute; give one per time step and one for the class")
    last = attributes[-1][0]
    labelled = last.startswith("{")
    classes = {name.strip().strip("'\"") for name in last.strip("{}").split(",")} if labelled else set()
    for kind, number_ in attributes[: -1 if labelled else None]:
        if kind != "relational" and kind.lower() not in NUMERIC:
            raise InputError(
                f"{path}: line {number_}: attribute type {kind!r}; the time steps must be numeric "
                "(and the class the last, nominal attribute)"
            )
    cases, labels, numbers = [], [], []
    for number_, line in enumerate(lines[body:], body + 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            continue
        if stripped.startswith("{"):
            raise InputError(
                f"{path}: line {number_}: sparse rows ({{...}}) are not read; write the values out"
            )
        if relational:
            quote = stripped[0]
            end = stripped.find(quote, 1) if quote in "'\"" else -1
            if end < 0:
                raise InputError(
                    f"{path}: line {number_}: the dimensions must be quoted: 'v1,v2,...\\nw1,w2,...',label"
                )
            dimensions = stripped[1:end].replace("\\n", "\n").split("\n")
            label = stripped[end + 1 :].lstrip(",")
        elif labelled:
            values, _, label = stripped.rpartition(",")
            dimensions = [values]
        else:
            dimensions, label = [stripped], ""
        if labelled:
            label = label.strip().strip("'\"")
            if label not in classes:
                raise InputError(
                    f"{path}: line {number_}: class {label!r} is not one the class attribute declares "
                    f"({', '.join(sorted(classes))})"
                )
            labels.append(label)
        cases.append(case_values(path, number_, dimensions))
        numbers.append(number_)
    return cases, labels if labelled else None, numbers
