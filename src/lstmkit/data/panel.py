"""Many series from one file: Nixtla's long format (a row per series and time: unique_id, ds, y) and the M4
competition's wide one (a row per series: its id, then its values, ragged).

Each series of a long file goes through the single-series reader (``series_from_table`` on that series'
rows, with their file lines), so it is parsed, regularised and filled exactly as ``load_series`` would;
messages add the series: "data.csv, line 57 (series 'H3'): ...".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.data.timeseries import (
    MISSING,
    STEPLESS,
    Clock,
    Series,
    Table,
    category_labels,
    is_numeric,
    parse_numbers,
    parse_steps,
    parse_times,
    read_table,
    series_from_table,
    table_from_frame,
)
from lstmkit.errors import InputError

ID, DS, Y = "unique_id", "ds", "y"  # Nixtla's column names
MIN_STEPS = 2  # the fewest time steps a series may have: one step has no frequency
SHOWN = 5  # series named in a summary note


@dataclass
class Panel:
    """Many series from one file: each a regular, gap-free Series (as load_series gives), in file order."""

    source: str  # the file, or "DataFrame"
    ids: list[str]  # one per series
    series: list[Series]  # target values, exogenous features, times (or None), clock: same clock for all
    id_name: str  # "unique_id", or the --id column
    time_name: str  # "ds", or the --time column, or "" for the wide format
    integer_steps: bool  # ds held integers (steps), not dates
    first_steps: list[int]  # for integer steps: each series' first ds (future ds = last + k); else []
    notes: list[str]  # what was repaired, per series, summarised (missing values interpolated, ...)
    ds_unit: str = ""  # dates: the numpy unit they were written in ("M" 2020-01, "D", "m" 2020-01-01 13:00)
    month_ends: bool = False  # monthly dates written as each month's last day (2020-01-31), as pandas' "ME"

    def __len__(self) -> int:
        return len(self.series)

    def last_step(self, i: int) -> int:
        """For integer steps: series I's last ds value."""
        return self.first_steps[i] + len(self.series[i].values) - 1

    def future_ds(self, i: int, horizon: int) -> list[str]:
        """The ds texts of the HORIZON steps after series I's end: integers, or dates written as the input's
        were (2020-02, 2020-02-01, 2020-02-29 for month ends, 2020-01-01 13:00; a space, not a T)."""
        if self.integer_steps:
            last = self.last_step(i)
            return [str(last + k) for k in range(1, horizon + 1)]
        series = self.series[i]
        times = series.clock.later(series.times[-1], horizon)  # (H,) datetime64
        if self.month_ends:
            times = (times.astype("datetime64[M]") + 1).astype("datetime64[D]") - 1
        elif not self.ds_unit:
            return series.clock.format(times)
        else:
            times = times.astype(f"datetime64[{self.ds_unit}]")
        return [text.replace("T", " ") for text in np.datetime_as_string(times)]


def as_table(data) -> Table:
    """A Table as it is, a CSV path read, a DataFrame read as that CSV would be."""
    if isinstance(data, Table):
        return data
    return read_table(data) if isinstance(data, (str, Path)) else table_from_frame(data)


# ---- which layout ----------------------------------------------------------------------------------------
def detect_layout(data, id_name: str = ID) -> str:
    """ "wide" for the M4 layout, "long" when column ID_NAME is present and holds more than one id, else
    "single" (one series, read by load_series). DATA: a path, a DataFrame or a Table (pass the Table on to
    load_long to read the file once)."""
    if is_m4_wide(data):
        return "wide"
    head = _head(data)
    if head is None or id_name not in head[0]:
        return "single"
    table = as_table(data)
    return "long" if len(set(table.column(id_name))) > 1 else "single"


def is_m4_wide(data) -> bool:
    """True for the M4 wide layout: a header V1, V2, ..., Vn (n >= 2), a non-numeric first field (the id)."""
    head = _head(data)
    if head is None:
        return False
    header, first = head
    wide = len(header) >= 2 and header == [f"V{k}" for k in range(1, len(header) + 1)]
    return wide and bool(first) and bool(first[0].strip()) and not is_numeric([first[0].strip()])


def _head(data) -> tuple[list[str], list[str]] | None:
    """The header and the first row (its fields as text), without reading a whole file; None if unreadable."""
    if isinstance(data, Table):
        return data.header, data.rows[0] if data.rows else []
    if not isinstance(data, (str, Path)):
        columns = getattr(data, "columns", None)
        if columns is None or not hasattr(data, "iloc"):
            return None
        first = [str(v) for v in data.iloc[0].tolist()] if len(data) else []
        return [str(c) for c in columns], first
    try:
        with open(data, encoding="utf-8-sig", newline="") as file:
            records = []
            for fields in csv.reader(file):
                if any(f.strip() for f in fields):
                    records.append(fields)
                if len(records) == 2:
                    break
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if not records:
        return None
    return [f.strip() for f in records[0]], records[1] if len(records) > 1 else []


# ---- long format -----------------------------------------------------------------------------------------
def load_long(
    data,
    id_name: str = ID,
    time_name: str = DS,
    target: str = Y,
    features: list[str] | tuple[str, ...] = (),
    categories: dict[str, list[str]] | None = None,
    *,
    min_steps: int = MIN_STEPS,
) -> Panel:
    """Read the long format (a row per series and time, in any order) from DATA (a CSV path, a DataFrame
    read as that CSV would be, or a Table): each series' rows sorted by time (stable), then read as
    load_series reads one series (missing times inserted, missing values interpolated).

    time_name's column holds ISO dates, or whole numbers for integer steps (missing numbers are missing
    steps). Numeric FEATURES stay numbers; the others are one-hot encoded with the labels of the whole file
    (or ``categories``, from training), the same columns for every series. Every series must have the same
    frequency and at least MIN_STEPS steps.
    """
    table = as_table(data)
    features = list(features)
    for name in (id_name, time_name, target, *features):
        table.index(name)
    groups = group_rows(table, id_name)
    steps = holds_steps(table, time_name)
    if categories is None:
        categories = {n: category_labels(table, n) for n in features if not is_numeric(table.column(n))}
    ids = list(groups)
    parts = [
        sorted_rows(table.subset(groups[key], f"series {key!r}"), time_name, steps, min_steps) for key in ids
    ]
    series = [
        read_one(part, target, time_name, features, categories, steps, min_steps) for part, _, _ in parts
    ]
    for (part, _, _), one in zip(parts, series):
        check_clock(part, one.clock, ids[0], parts[0][0], series[0].clock)
    first_steps, ds_unit, month_ends = [], "", False
    if steps:
        first_steps = [int(one.times[0]) for one in series]
        for one in series:
            one.times = None  # integer steps: the panel keeps the first, the row order is the time
    else:
        ds_unit, month_ends = date_form([times for _, times, _ in parts], series[0].clock)
    notes = [f"series {key!r}: {note}" for key, one in zip(ids, series) for note in one.notes]
    unsorted = [key for key, (_, _, moved) in zip(ids, parts) if moved]
    if unsorted:
        notes.insert(0, f"rows sorted by {time_name} in {len(unsorted)} series ({shown(unsorted)})")
    source = str(table.path)
    return Panel(source, ids, series, id_name, time_name, steps, first_steps, notes, ds_unit, month_ends)


def group_rows(table: Table, id_name: str) -> dict[str, list[int]]:
    """Each id's row indices, ids in the order they first appear; InputError at the first empty id."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(table.column(id_name)):
        groups.setdefault(key, []).append(i)
    if "" in groups:
        raise InputError(
            f"{table.place(groups[''][0])}: empty {id_name}; give every row the id of its series"
        )
    return groups


def holds_steps(table: Table, time_name: str) -> bool:
    """True when every time given is a number: integer steps 1, 2, 3..., not dates (parse_steps refuses
    fractions)."""
    texts = [text for text in table.column(time_name) if text.lower() not in MISSING]  # an error later
    try:
        values = np.array(texts, dtype=float)
    except ValueError:
        return False
    return bool(len(values) and np.isfinite(values).all())


def sorted_rows(part: Table, time_name: str, steps: bool, min_steps: int) -> tuple[Table, np.ndarray, bool]:
    """One series' rows sorted by time (stable), its times (N,) and whether they moved; InputError at a
    missing time, a duplicate time or too few rows."""
    for i, text in enumerate(part.column(time_name)):
        if text.lower() in MISSING:
            raise InputError(f"{part.place(i)}: no {time_name} (time) value; give every row its time")
    times = parse_steps(part, time_name) if steps else parse_times(part, [time_name])
    if len(times) < min_steps:
        raise InputError(
            f"{part.place(0)}: {len(times)} row(s); a series needs at least {min_steps} time steps: add "
            "rows, or leave the series out"
        )
    order = np.argsort(times, kind="stable")
    moved = bool((order != np.arange(len(order))).any())
    if moved:
        part, times = part.subset(order, part.label), times[order]
    same = np.flatnonzero(times[1:] == times[:-1])
    if len(same):
        i = int(same[0]) + 1
        raise InputError(
            f"{part.place(i)}: {time_name} {part.column(time_name)[i]!r} again (first at line "
            f"{part.lines[i - 1]}); a series has one row per time: remove or merge the duplicate"
        )
    return part, times, moved


def read_one(
    part: Table,
    target: str,
    time_name: str,
    features: list[str],
    categories: dict[str, list[str]],
    steps: bool,
    min_steps: int,
) -> Series:
    """One series' sorted rows as a regular Series; InputError when its target is empty or too short."""
    if np.isnan(parse_numbers(part, target)).all():
        raise InputError(
            f"{part.place(0)}: no {target} values, every row of the series is empty or NA; fill them in, "
            "or leave the series out"
        )
    series = series_from_table(part, target, [time_name], features, categories, steps=steps)
    if len(series.values) < min_steps:
        raise InputError(
            f"{part.place(0)}: {len(series.values)} step(s) from the first complete row on; a series needs "
            f"at least {min_steps}: fill in the missing values, or leave the series out"
        )
    return series


def check_clock(part: Table, clock: Clock, first_id: str, first: Table, first_clock: Clock) -> None:
    """InputError when a series' frequency differs from the first series'."""
    if clock != first_clock:
        raise InputError(
            f"{part.place(0)}: {describe(clock)} steps, but series {first_id!r} (line {first.lines[0]}) has "
            f"{describe(first_clock)} steps; every series must have the same frequency: resample the series, "
            "or leave it out"
        )


def describe(clock: Clock) -> str:
    return clock.frequency if clock.frequency != "steps" else f"{clock.step}-{clock.unit or 'step'}"


def date_form(times: list[np.ndarray], clock: Clock) -> tuple[str, bool]:
    """How the dates were written, for future_ds: the numpy unit of the finest (over all series' times as
    parsed) and, for monthly series dated by day, whether every date is the last day of its month."""
    unit = np.datetime_data(np.result_type(*times))[0]
    if clock.unit != "M" or unit in ("M", "Y"):
        return unit, False
    days = np.concatenate(times).astype("datetime64[D]")
    return unit, bool(((days.astype("datetime64[M]") + 1).astype("datetime64[D]") - 1 == days).all())


def shown(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")


# ---- M4's wide format ------------------------------------------------------------------------------------
def load_m4_wide(data, *, min_steps: int = MIN_STEPS) -> Panel:
    """Read the M4 competition's wide CSV (header V1..Vn; a row per series: its id, then its values, then
    empty fields): integer steps from 1, no times. DATA: a path, a DataFrame or a Table."""
    table = as_table(data)
    if not is_m4_wide(table):
        raise InputError(
            f"{table.path}: not the M4 wide layout (a header V1, V2, ..., then a row per series: its id, "
            "then its values); give such a file, or a long one with columns unique_id, ds, y"
        )
    ids, series, seen = [], [], {}
    for i, fields in enumerate(table.rows):
        key = fields[0].strip()
        if not key:
            raise InputError(f"{table.place(i)}: empty series id in column V1; give every row its id")
        if key in seen:
            raise InputError(
                f"{table.place(i)}: series {key!r} again (first at line {seen[key]}); give each series one "
                "row"
            )
        seen[key] = table.lines[i]
        ids.append(key)
        series.append(wide_row(table.subset([i], f"series {key!r}"), min_steps))
    return Panel(str(table.path), ids, series, ID, "", True, [1] * len(ids), [])


def wide_row(row: Table, min_steps: int) -> Series:
    """One wide row (a one-row Table) as a Series: the values after the id, up to the last one."""
    texts = [text.strip() for text in row.rows[0][1:]]
    present = [text.lower() not in MISSING for text in texts]
    count = len(present) - present[::-1].index(True) if any(present) else 0
    if count == 0:
        raise InputError(
            f"{row.place(0)}: no values after the id; give the series its values, or remove the row"
        )
    if not all(present[:count]):
        k = present.index(False)
        raise InputError(
            f"{row.place(0)}, column {row.header[k + 1]!r}: empty, but values follow (up to column "
            f"{row.header[count]!r}); a row holds its values without gaps, then only empty fields"
        )
    if count < min_steps:
        raise InputError(
            f"{row.place(0)}: {count} value(s); a series needs at least {min_steps}: add values, or remove "
            "the row"
        )
    values = wide_numbers(row, texts[:count])
    return Series(Y, values, np.zeros((count, 0)), [], 0, {}, None, STEPLESS, "step")


def wide_numbers(row: Table, texts: list[str]) -> np.ndarray:
    """A wide row's values as float64 (N,); InputError at the first that is not a number."""
    try:
        values = np.array(texts, dtype=float)
        if np.isfinite(values).all():
            return values
    except ValueError:
        pass
    for k, text in enumerate(texts):
        try:
            good = np.isfinite(float(text))
        except ValueError:
            good = False
        if not good:
            raise InputError(
                f"{row.place(0)}, column {row.header[k + 1]!r}: {text!r} is not a number; fix the value"
            )
    raise AssertionError("numpy rejected the values as a whole but accepted each one")


def load_m4_pair(train, test, *, min_steps: int = MIN_STEPS) -> tuple[Panel, Panel]:
    """The M4 training file and its test file (the next values of the same series, in the same order) as two
    Panels; the test Panel's steps continue the training ones (its first_steps: each training end + 1)."""
    train_table, test_table = as_table(train), as_table(test)
    first, second = load_m4_wide(train_table, min_steps=min_steps), load_m4_wide(test_table, min_steps=1)
    for k, (a, b) in enumerate(zip(first.ids, second.ids)):
        if a != b:
            raise InputError(
                f"{test_table.place(k)}: series {b!r} where {first.source} has {a!r} (line "
                f"{train_table.lines[k]}); the two files must hold the same series in the same order"
            )
    if len(first.ids) != len(second.ids):
        longer, shorter = (first, second) if len(first.ids) > len(second.ids) else (second, first)
        raise InputError(
            f"{shorter.source}: {len(shorter.ids)} series but {longer.source} has {len(longer.ids)}; the "
            f"first without a match is {longer.ids[len(shorter.ids)]!r}; the two files must hold the same "
            "series"
        )
    second.first_steps = [first.last_step(i) + 1 for i in range(len(first))]
    return first, second
