"""Labelled texts for classification, read from one-text-per-line files (one file per class), a CSV/TSV
table, or a folder with one subfolder per class; and the stratified splits and folds that tasks train on.

Every reader raises InputError with one line naming the file (and line or column) and what to do."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import random
from dataclasses import dataclass
from pathlib import Path

from lstmkit.errors import InputError

DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "bar"}
QUOTINGS = ("auto", "csv", "none")
SNIFF_ROWS = 200  # rows parsed to choose the delimiter


@dataclass
class LabelledTexts:
    texts: list[str]
    labels: list[int]  # index into class_names
    class_names: list[str]
    read_as: str = ""  # how a table was read (delimiter, quoting); empty for other sources


# ---- text files --------------------------------------------------------------------------------------
def read_text_file(path: str | Path, encoding: str | None = None) -> str:
    """The text of PATH decoded as ENCODING (default UTF-8, with or without a byte-order mark)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{path}: the file is empty; give a file with data in it")
    try:
        text = data.decode(_codec(encoding or "utf-8-sig"))
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - data.rfind(b"\n", 0, error.start)
        raise InputError(
            f"{path}: line {line}, byte {column}: 0x{data[error.start]:02x} is not "
            f"{encoding or 'UTF-8'} text; {_encoding_hint(data, encoding)}"
        ) from None
    if "\x00" in text:
        raise InputError(f"{path}: holds NUL characters, so it is not text; give a text file")
    return text


def _codec(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} (--encoding); try utf-8 or cp1252") from None


def _encoding_hint(data: bytes, encoding: str | None) -> str:
    if encoding is None:
        try:
            data.decode("cp1252")
            return "if it is Windows-1252 (common in older English text), pass --encoding cp1252"
        except UnicodeDecodeError:
            pass
    return "pass the file's encoding with --encoding (e.g. cp1252, latin-1) or re-save it as UTF-8"


def text_lines(text: str) -> list[str]:
    """Lines split on "\\n" only (a CRLF's "\\r" dropped); never str.splitlines(), which also breaks lines
    at characters such as U+0085 that cp1252 and Latin-1 text can hold inside a line."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return lines[:-1] if lines[-1] == "" else lines


# ---- one-text-per-line files -------------------------------------------------------------------------
def class_names_for(paths: list[Path]) -> list[str]:
    """Class names from file names: the suffixes when the stems agree (rt-polarity.pos, .neg -> pos, neg),
    otherwise the stems (good.txt, bad.txt -> good, bad)."""
    stems = {path.stem for path in paths}
    names = [path.suffix[1:] if len(stems) == 1 else path.stem for path in paths]
    if len(set(names)) != len(names) or "" in names:
        raise InputError(
            f"cannot name a class for each of {', '.join(map(str, paths))}; give the files distinct names"
        )
    return names


def read_class_files(files: dict[str, Path], encoding: str | None = None) -> LabelledTexts:
    """One text per non-blank line; FILES maps each class name to its file."""
    texts, labels = [], []
    for label, path in enumerate(files.values()):
        lines = [line for line in text_lines(read_text_file(path, encoding)) if line.strip()]
        texts += lines
        labels += [label] * len(lines)
    return checked(LabelledTexts(texts, labels, list(files)), ", ".join(map(str, files.values())))


# ---- class folders -----------------------------------------------------------------------------------
def read_folder(folder: Path, encoding: str | None = None) -> LabelledTexts:
    """One subfolder per class (its name is the class), each file in it one text."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InputError(f"{folder}: holds no subfolders; put the texts of each class in a subfolder of it")
    texts, labels = [], []
    for label, subfolder in enumerate(classes):
        files = sorted(p for p in subfolder.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise InputError(f"{subfolder}: holds no files; put one text per file in it, or remove it")
        texts += [read_text_file(path, encoding) for path in files]
        labels += [label] * len(files)
    return checked(LabelledTexts(texts, labels, [p.name for p in classes]), str(folder))


# ---- tables ------------------------------------------------------------------------------------------
@dataclass
class Table:
    """Rows of a delimited file, all with the same number of fields; ``header`` is None if it has none."""

    path: Path
    rows: list[list[str]]
    lines: list[int]  # the line of the file where each row starts
    header: list[str] | None = None
    read_as: str = ""  # e.g. "tab-delimited, CSV quoting"

    def column_names(self) -> list[str]:
        return self.header or [str(number) for number in range(1, len(self.rows[0]) + 1)]

    def column(self, spec: str, flag: str) -> int:
        """Index of the column SPEC names: a header name, or a number counting from 1."""
        if self.header and spec in self.header:
            return self.header.index(spec)
        if spec.isdigit() and 1 <= int(spec) <= len(self.rows[0]):
            return int(spec) - 1
        names = ", ".join(map(repr, self.column_names()))
        raise InputError(f"{self.path}: no column {spec!r} ({flag}); the columns are {names}")

    def drop_header(self) -> None:
        self.header, self.rows, self.lines = self.rows[0], self.rows[1:], self.lines[1:]
        if not self.rows:
            raise InputError(f"{self.path}: has a header and no data rows; give a file with data in it")


def read_table(path: Path, text: str, delimiter: str, quoting: str = "auto") -> Table:
    """Parse TEXT (the contents of PATH) as rows of DELIMITER-separated fields; blank lines are skipped, and
    every row must have as many fields as the first.

    QUOTING "csv": a field may be quoted ("a, b" is one field, "" a quote inside it, and a quoted field may
    span lines). "none": each line is one row, split at every DELIMITER; quotes are part of the text.
    "auto": "csv", unless the file's quotes do not follow CSV quoting (a field such as `"Wow" he said`,
    or rows of different widths) or its quoted fields span lines, while its lines, split as they are, make
    an even table: then "none", as such files (literal quotes in text fields) mean it."""
    if quoting not in QUOTINGS:
        raise InputError(f"--quoting {quoting!r}: give one of {', '.join(QUOTINGS)}")
    name = delimiter_name(delimiter)
    if quoting == "none":
        return _even(path, *_split_lines(text, delimiter), delimiter, f"{name}-delimited, quotes as text")
    try:
        rows, lines, spans = _csv_rows(text, delimiter)
        failure = None
    except csv.Error as error:
        failure = error
    if quoting == "csv" or (failure is None and not spans and _is_even(rows)):
        if failure is not None:
            hint = ", or pass --quoting none if the file's quotes are part of its text"
            raise _quoting_error(path, failure, hint)
        return _even(path, rows, lines, delimiter, f"{name}-delimited, CSV quoting")
    literal_rows, literal_lines = _split_lines(text, delimiter)
    if _is_even(literal_rows):
        quoted = sum('"' in line for line in text_lines(text))
        return Table(
            path,
            literal_rows,
            literal_lines,
            read_as=f"{name}-delimited, read line by line with quotes as text ({quoted} lines hold quotes, "
            "and the file's quotes do not follow CSV quoting); --quoting csv reads them as CSV quoting",
        )
    if failure is not None:
        raise _quoting_error(path, failure)
    return _even(path, rows, lines, delimiter, f"{name}-delimited, CSV quoting")


def _quoting_error(path: Path, failure: csv.Error, hint: str = "") -> InputError:
    line, reason = failure.args
    return InputError(f"{path}: line {line}: {reason}; fix the quoting there{hint}")


def _csv_rows(text: str, delimiter: str) -> tuple[list[list[str]], list[int], bool]:
    """Rows by CSV quoting, the line each starts on, and whether any spans lines; csv.Error(line, reason)."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    rows, lines, previous, spans = [], [], 0, False
    try:
        for row in reader:
            if row:
                rows.append(row)
                lines.append(previous + 1)
                spans = spans or reader.line_num > previous + 1
            previous = reader.line_num
    except csv.Error as error:
        raise csv.Error(reader.line_num, str(error)) from None
    return rows, lines, spans


def _split_lines(text: str, delimiter: str) -> tuple[list[list[str]], list[int]]:
    """Each non-blank line split at every DELIMITER, and its line number."""
    pairs = [(line.split(delimiter), n) for n, line in enumerate(text_lines(text), 1) if line.strip()]
    return [row for row, _ in pairs], [n for _, n in pairs]


def _is_even(rows: list[list[str]]) -> bool:
    return all(len(row) == len(rows[0]) for row in rows)


def _even(path: Path, rows: list[list[str]], lines: list[int], delimiter: str, read_as: str) -> Table:
    """The Table of ROWS; InputError naming the first row whose width differs from the first row's."""
    if not rows:
        raise InputError(f"{path}: holds only blank lines; give a file with data in it")
    for row, line in zip(rows, lines):
        if len(row) != len(rows[0]):
            raise InputError(
                f"{path}: line {line} has {len(row)} fields, line {lines[0]} has {len(rows[0])}; "
                f"every row needs the same columns (quote fields that hold the {delimiter_name(delimiter)})"
            )
    return Table(path, rows, lines, read_as=read_as)


def delimiter_name(delimiter: str) -> str:
    return DELIMITERS.get(delimiter, repr(delimiter))


def detect_delimiter(path: Path, text: str) -> str | None:
    """The delimiter that splits the first rows into the same number (> 1) of fields most consistently,
    read with CSV quoting or line by line, whichever is more consistent; ties go to the one the file name
    suggests (.tsv: tab). None if no delimiter splits the rows."""
    preferred = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    head = [line for line in itertools.islice(text_lines(text), SNIFF_ROWS) if line.strip()]
    best, best_score = None, (0.0, 0)
    for delimiter in sorted(DELIMITERS, key=lambda d: d != preferred):
        readings = [[len(line.split(delimiter)) for line in head]]
        try:
            reader = csv.reader(io.StringIO("\n".join(head)), delimiter=delimiter)
            readings.append([len(row) for row in reader if row])
        except csv.Error:
            pass
        for counts in filter(None, readings):
            mode = max(set(counts), key=counts.count)
            score = (counts.count(mode) / len(counts), mode)
            if mode > 1 and score > best_score:
                best, best_score = delimiter, score
    return best


def read_text_table(
    path: Path,
    text_column: str | None = None,
    label_column: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    quoting: str = "auto",
) -> LabelledTexts:
    """A CSV/TSV with a text column (default: the longest strings) and a label column (default: the
    other column with the fewest distinct values); a header row is detected (its label is no class).
    QUOTING: see ``read_table``."""
    content = read_text_file(path, encoding)
    delimiter = delimiter or detect_delimiter(path, content)
    if delimiter is None:
        raise InputError(
            f"{path}: cannot find the delimiter (tried {', '.join(DELIMITERS.values())}); pass --delimiter"
        )
    table = read_table(path, content, delimiter, quoting)
    if len(table.rows[0]) < 2:
        raise InputError(f"{path}: needs a text column and a label column, found one column")
    named = [spec for spec in (text_column, label_column) if spec is not None and not spec.isdigit()]
    if named:
        table.header = table.rows[0]  # a column named by its header: the first row is the header
    text_index = _text_column(table, text_column)
    label_index = _label_column(table, label_column, text_index)
    body_labels = {row[label_index].strip() for row in table.rows[1:]}
    if named or table.rows[0][label_index].strip() not in body_labels:
        table.drop_header()
    data = labelled_rows(table, text_index, label_index)
    data.read_as = table.read_as
    return data


def _text_column(table: Table, spec: str | None) -> int:
    if spec is not None:
        return table.column(spec, "--text-column")
    body = table.rows[1:] or table.rows
    lengths = [sum(len(row[i]) for row in body) for i in range(len(table.rows[0]))]
    return lengths.index(max(lengths))


def _label_column(table: Table, spec: str | None, text_index: int) -> int:
    if spec is not None:
        index = table.column(spec, "--label-column")
        if index == text_index:
            raise InputError(f"{table.path}: the text and label columns are both column {index + 1}")
        return index
    body = table.rows[1:] or table.rows
    others = [i for i in range(len(table.rows[0])) if i != text_index]
    return min(others, key=lambda i: len({row[i].strip() for row in body}))


def labelled_rows(table: Table, text_index: int, label_index: int) -> LabelledTexts:
    names = table.column_names()
    for row, line in zip(table.rows, table.lines):
        if not row[label_index].strip():
            raise InputError(
                f"{table.path}: line {line}: empty label in column {names[label_index]!r}; "
                "give every row a label or remove the row"
            )
    raw = [row[label_index].strip() for row in table.rows]
    class_names = sorted_classes(set(raw))
    index = {name: label for label, name in enumerate(class_names)}
    texts = [row[text_index] for row in table.rows]
    return checked(LabelledTexts(texts, [index[name] for name in raw], class_names), str(table.path))


def sorted_classes(names: set[str]) -> list[str]:
    """Numeric order if every name is a number (-1 before 1 before 10), otherwise alphabetical."""
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


def checked(data: LabelledTexts, source: str) -> LabelledTexts:
    """DATA, after checking that it has at least two classes."""
    present = sorted(set(data.labels))
    if len(present) < 2:
        found = f"only the class {data.class_names[present[0]]!r}" if present else "no examples"
        raise InputError(f"{source}: {found}; a classifier needs examples of at least two classes")
    return data


# ---- splits ------------------------------------------------------------------------------------------
def stratified_folds(labels: list[int], k: int, seed: int) -> list[list[int]]:
    """K disjoint folds covering every index once, each class dealt round-robin over them after a seeded
    shuffle, so each fold has about 1/K of every class and fold sizes differ by at most one."""
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    dealt = 0
    for label in sorted(set(labels)):
        members = [i for i, value in enumerate(labels) if value == label]
        rng.shuffle(members)
        for index in members:
            folds[dealt % k].append(index)
            dealt += 1
    return [sorted(fold) for fold in folds]


def stratified_split(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held out) indices: about FRACTION of each class held out (with FRACTION > 0, at least one
    of any class that has two or more examples)."""
    rng = random.Random(seed)
    kept, held = [], []
    for label in sorted(set(labels)):
        members = [i for i, value in enumerate(labels) if value == label]
        rng.shuffle(members)
        count = max(1, round(fraction * len(members))) if fraction > 0 and len(members) > 1 else 0
        held += members[:count]
        kept += members[count:]
    return sorted(kept), sorted(held)
