"""Labelled numeric series for sequence classification: the UCR text format (whitespace-separated, the class
label first, then the values), CSV/TSV with one series per row plus a label column, and the archive's
``.ts`` and ``.arff`` files (``archive``: several dimensions, lengths that differ); z-normalisation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from lstmkit.data.archive import read_archive
from lstmkit.data.labelled_text import (
    Table,
    detect_delimiter,
    read_table,
    read_text_file,
    sorted_classes,
    text_lines,
)
from lstmkit.errors import InputError

NORMALIZATIONS = ("series", "train", "none")
MAX_LABEL_CLASSES = 20  # a detected label column has at most this many distinct values
ARCHIVE_SUFFIXES = (".ts", ".arff")


@dataclass
class LabelledSeries:
    values: torch.Tensor  # (N, T) float32 from a table; (N, C, T) from a .ts/.arff file, NaN after a case
    labels: list[str] | None  # class name of each series; None when the file has no label column
    lines: list[int]  # the line of the file each series comes from
    label_column: int | None  # index of the label column among the file's fields
    read_as: str = ""  # what the report says of an archive file


def read_rows(path: Path, delimiter: str | None = None) -> Table:
    """The fields of every non-blank line: split on DELIMITER, else on the delimiter detected, else on
    runs of whitespace (the UCR format)."""
    text = read_text_file(path)
    delimiter = delimiter or detect_delimiter(path, text)
    if delimiter is not None:
        return read_table(path, text, delimiter)
    pairs = [(line.split(), number) for number, line in enumerate(text_lines(text), 1) if line.strip()]
    if not pairs:
        raise InputError(f"{path}: holds only blank lines; give one series per line")
    table = Table(path, [row for row, _ in pairs], [number for _, number in pairs])
    for row, line in pairs:
        if len(row) != len(table.rows[0]):
            raise InputError(
                f"{path}: line {line} has {len(row)} fields, line {table.lines[0]} has {len(table.rows[0])}; "
                "every series must have the same length (one series per line)"
            )
    return table


def number_list(text: str) -> list[float]:
    """'1.5, 2, 3e2' -> [1.5, 2.0, 300.0]; InputError unless TEXT is finite numbers separated by commas."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = [math.nan]
    if not all(map(math.isfinite, values)):
        raise InputError(
            f"{text[:40]!r} is neither a file nor finite numbers separated by commas; give a file or "
            "e.g. 1.5,2,3"
        )
    return values


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_series(
    path: Path,
    label_column: str | None = None,
    delimiter: str | None = None,
    length: int | None = None,
) -> LabelledSeries:
    """Series with their class labels. The label column is LABEL_COLUMN (a header name or a number from 1),
    else detected: a column of words, else the whole-number column with the fewest (2 to 20) distinct
    values, else the first. With LENGTH (prediction), rows of LENGTH fields have no label column. A .ts or
    .arff file names its own classes (LABEL_COLUMN and DELIMITER do not apply)."""
    if path.suffix.lower() in ARCHIVE_SUFFIXES:
        read = read_archive(path)
        return LabelledSeries(torch.from_numpy(read.values), read.labels, read.lines, None, read.read_as)
    table = read_rows(path, delimiter)
    first_non_numbers = sum(not is_number(cell) for cell in table.rows[0])
    if len(table.rows) > 1 and first_non_numbers > sum(not is_number(cell) for cell in table.rows[1]):
        table.drop_header()
    width = len(table.rows[0])
    if length is not None and width == length:
        index = None
    elif length is not None and width != length + 1:
        raise InputError(
            f"{path}: line {table.lines[0]} has {width} fields; the model reads series of {length} values, "
            "with or without a label column"
        )
    elif label_column is not None:
        index = table.column(label_column, "--label-column")
    else:
        index = detect_label_column(table)
    if width - (index is not None) < 1:
        raise InputError(f"{path}: the rows hold a label and no values; give one series per row")
    values = [[cell for i, cell in enumerate(row) if i != index] for row in table.rows]
    numbers = torch.tensor(parse_numbers(table, values, index), dtype=torch.float32)  # (N, T)
    labels = None if index is None else [label_name(row[index]) for row in table.rows]
    return LabelledSeries(numbers, labels, table.lines, index)


def detect_label_column(table: Table) -> int:
    columns = list(zip(*table.rows))
    for index, column in enumerate(columns):
        if sum(not is_number(cell) for cell in column) > len(column) / 2:
            return index  # labels in words; a stray word in a column of numbers is an error, not a label
    whole = [
        index
        for index, column in enumerate(columns)
        if all(is_number(cell) and float(cell).is_integer() for cell in column)
        and 2 <= len(set(map(float, column))) <= MAX_LABEL_CLASSES
    ]
    return min(whole, key=lambda index: len(set(map(float, columns[index]))), default=0)


def parse_numbers(table: Table, values: list[list[str]], label_index: int | None) -> list[list[float]]:
    """Floats, with InputError naming the line and column of the first cell that is not a finite number."""
    rows = []
    for cells, line in zip(values, table.lines):
        try:
            numbers = [float(cell) for cell in cells]
        except ValueError:
            numbers = [math.nan]
        if all(map(math.isfinite, numbers)):
            rows.append(numbers)
            continue
        position = next(
            i for i, cell in enumerate(cells) if not (is_number(cell) and math.isfinite(float(cell)))
        )
        column = position + (label_index is not None and position >= label_index) + 1
        raise InputError(
            f"{table.path}: line {line}, column {column}: {cells[position]!r} is not a finite number; "
            "every value of a series must be a number (fill or drop missing values)"
        )
    return rows


def label_name(cell: str) -> str:
    """A class label as text: whole numbers in plain form ("1.0000000e+00" -> "1"), anything else as is."""
    cell = cell.strip()
    if is_number(cell) and math.isfinite(float(cell)) and float(cell).is_integer():
        return str(int(float(cell)))
    return cell


def class_names(labels: list[str], path: Path) -> list[str]:
    """The distinct labels in order; InputError if there are fewer than two."""
    names = sorted_classes(set(labels))
    if len(names) < 2:
        raise InputError(f"{path}: only the class {names[0]!r}; a classifier needs at least two classes")
    return names


def z_normalize(values: torch.Tensor, how: str, mean=0.0, std=1.0) -> torch.Tensor:
    """Values (N, T) scaled to zero mean and unit deviation: "series" each series by its own statistics
    (the UCR convention: shape matters, not level or scale), "train" by MEAN and STD fitted on the training
    values (floats, or tensors that broadcast against VALUES: one per row), "none" unchanged. A constant
    series becomes zeros."""
    if how == "series":
        mean_t, std_t = (
            values.mean(dim=1, keepdim=True),
            values.std(dim=1, keepdim=True, correction=0),
        )  # (N, 1) each
        return (values - mean_t) / torch.where(std_t > 0, std_t, 1.0)
    if how == "train":
        std = torch.as_tensor(std)
        return (values - mean) / torch.where(std > 0, std, torch.ones_like(std))
    return values


def sliding_windows(values: torch.Tensor, window: int, stride: int) -> torch.Tensor:
    """Values (N, T) -> (N, S, WINDOW): the LSTM's input at step s is values[s*STRIDE : s*STRIDE+WINDOW].
    Overlapping windows give the LSTM a local shape at each step and fewer steps to carry its memory over.
    The end is padded with the last value so that the windows cover every value."""
    steps = 1 + max(0, -(-(values.shape[1] - window) // stride))
    padding = (steps - 1) * stride + window - values.shape[1]
    padded = torch.cat([values, values[:, -1:].expand(-1, padding)], dim=1)  # (N, T + padding)
    return padded.unfold(1, window, stride)
