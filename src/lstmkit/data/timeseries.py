"""Time series from CSV files: reading, times and their frequency, missing values, season detection.

A CSV is read with the standard `csv` module (CRLF, quoted fields and a missing final newline are all
fine). The result is a regular `Series`: one row per time step, no missing values, with a report of what
was repaired: missing times inserted, missing values interpolated along time, leading gaps dropped.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstmkit.errors import InputError

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}  # compared in lower case
MAX_CATEGORIES = 50  # more distinct labels than this is not a categorical column but a mistake
CALENDAR_COLUMNS = ("year", "month", "day", "hour")  # split timestamps, as in the Beijing data

# frequency name -> (seasons worth considering, the default); daily data chooses by seasonal strength
SEASONS = {
    "hourly": ((24,), 24),
    "daily": ((7, 365), 7),
    "weekly": ((52,), 52),
    "monthly": ((12,), 12),
    "quarterly": ((4,), 4),
    "yearly": ((1,), 1),
    "steps": ((1,), 1),
}


@dataclass
class Table:
    """A CSV file's header and rows, all strings; ``lines[i]`` is the file line of ``rows[i]`` (for a
    DataFrame, its row number from 1)."""

    path: Path | str  # a file, or "DataFrame"
    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    label: str = ""  # "series 'H3'" for the rows of one series of a file of many, for messages

    def place(self, i: int) -> str:
        """Where row I comes from, for messages: "data.csv, line 32", "DataFrame, row 31" or
        "data.csv, line 57 (series 'H3')"."""
        word = "line" if isinstance(self.path, Path) else "row"
        return f"{self.path}, {word} {self.lines[i]}{self.suffix()}"

    def source(self) -> str:
        """The file, and the series when the table holds one of many: "data.csv (series 'H3')"."""
        return f"{self.path}{self.suffix()}"

    def suffix(self) -> str:
        return f" ({self.label})" if self.label else ""

    def subset(self, rows: list[int] | np.ndarray, label: str) -> Table:
        """The rows ROWS (indices, in that order) with their lines, as the table of one series."""
        lines = [self.lines[i] for i in rows]
        return Table(self.path, self.header, [self.rows[i] for i in rows], lines, label)

    def index(self, name: str) -> int:
        if name not in self.header:
            raise InputError(
                f"{self.path}: no column {name!r}; the columns are {', '.join(self.header)}; "
                "name one of them (names are case-sensitive)"
            )
        return self.header.index(name)

    def column(self, name: str) -> list[str]:
        i = self.index(name)
        return [row[i].strip() for row in self.rows]


def read_table(path: str | Path) -> Table:
    """Read a CSV file with a header line; InputError naming the file and line if it cannot be."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[error.start]:02x}); re-save the file as UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header, rows, lines = None, [], []
    for fields in reader:
        if not "".join(fields).strip():
            continue  # blank lines
        if header is None:
            header = [f.strip() for f in fields]
        elif len(fields) != len(header):
            raise InputError(
                f"{path}, line {reader.line_num}: {len(fields)} fields but the header has {len(header)}; "
                "fix that line"
            )
        else:
            rows.append(fields)
            lines.append(reader.line_num)
    if header is None:
        raise InputError(f"{path}: the file is empty; give a CSV file with a header line and rows of values")
    if not rows:
        raise InputError(f"{path}: only a header line, no rows of values; give a CSV file with data")
    return Table(path, header, rows, lines)


def table_from_frame(frame) -> Table:
    """A pandas DataFrame as a Table of strings, so that it is read exactly as the same CSV would be:
    missing values (NaN, None, NaT) become empty fields, timestamps ISO text."""
    if not hasattr(frame, "columns") or not hasattr(frame, "itertuples"):
        raise InputError(f"expected a CSV path or a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise InputError("DataFrame: no rows; give a DataFrame with a column per variable and a row per step")
    columns = []
    for name in frame.columns:
        column = frame[name]
        if hasattr(column, "dt") and str(column.dtype).startswith("datetime"):
            texts = column.dt.strftime("%Y-%m-%dT%H:%M:%S").where(column.notna(), "")
        else:
            texts = column.astype(object).where(column.notna(), "").astype(str)
        columns.append(texts.tolist())
    rows = [list(row) for row in zip(*columns)]
    return Table("DataFrame", [str(name) for name in frame.columns], rows, list(range(1, len(rows) + 1)))


def parse_numbers(table: Table, name: str, missing_ok: bool = True) -> np.ndarray:
    """The column as float64, NaN where missing; InputError at the first value that is not a number."""
    texts = table.column(name)
    try:
        values = np.array(texts, dtype=float)  # all numbers: at once
        if np.isfinite(values).all():
            return values
    except ValueError:
        pass  # a missing value or a mistake: one by one, below
    values = np.empty(len(texts))
    for i, text in enumerate(texts):
        if text.lower() in MISSING and missing_ok:
            values[i] = np.nan
            continue
        try:
            values[i] = float(text)
        except ValueError:
            values[i] = np.nan
        if not np.isfinite(values[i]):
            raise InputError(
                f"{table.place(i)}, column {name!r}: {text!r} is not a number; fix the "
                f"value, or leave it empty or NA to have it interpolated"
            )
    return values


def is_numeric(texts: list[str]) -> bool:
    """True when every non-missing value parses as a float."""
    for text in texts:
        if text.lower() not in MISSING:
            try:
                float(text)
            except ValueError:
                return False
    return True


def one_hot(table: Table, name: str, categories: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """A categorical column as 0/1 columns, one per category (sorted); NaN rows where the label is missing.

    ``categories`` fixes the columns (from training); a label outside them gets all zeros.
    """
    labels = table.column(name)
    if categories is None:
        categories = category_labels(table, name, labels)
    codes = np.zeros((len(labels), len(categories)))  # (N, K)
    position = {c: k for k, c in enumerate(categories)}
    for i, label in enumerate(labels):
        if label.lower() in MISSING:
            codes[i] = np.nan
        elif label in position:
            codes[i, position[label]] = 1.0
    return codes, categories


def category_labels(table: Table, name: str, labels: list[str] | None = None) -> list[str]:
    """The distinct labels of a categorical column (LABELS: the column, when already at hand), sorted."""
    labels = table.column(name) if labels is None else labels
    categories = sorted({label for label in labels if label.lower() not in MISSING})
    if len(categories) > MAX_CATEGORIES:
        raise InputError(
            f"{table.source()}, column {name!r}: {len(categories)} distinct non-numeric values, too many for "
            f"a categorical feature (at most {MAX_CATEGORIES}); leave it out of --features"
        )
    return categories


# ---- times ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Clock:
    """The regular time grid of a series: a numpy datetime64 unit, a step in that unit, and a name."""

    unit: str  # "M" for months, "h", "D", "s", ...; "" when the series has no times
    step: int
    frequency: str  # a key of SEASONS

    # Without a unit, times are whole numbers (integer steps 1, 2, 3...: int64), not dates.
    def positions(self, times: np.ndarray) -> np.ndarray:
        """Whole steps since 1970-01-01 (the position in any season): (N,) int64."""
        if not self.unit:
            return times.astype(np.int64) // self.step
        return times.astype(f"datetime64[{self.unit}]").astype(np.int64) // self.step

    def later(self, last: np.datetime64, count: int) -> np.ndarray:
        """The ``count`` times after ``last``."""
        if not self.unit:
            return last + np.arange(1, count + 1, dtype=np.int64) * self.step
        return last + np.arange(1, count + 1) * np.timedelta64(self.step, self.unit)

    def format(self, times: np.ndarray) -> list[str]:
        if not self.unit:
            return [str(int(t)) for t in times]
        text = np.datetime_as_string(times, unit="h" if self.unit == "h" else None)
        return [t.replace("T", " ") + (":00" if self.unit == "h" else "") for t in text]


STEPS = [  # (step in seconds, clock) for the common frequencies
    (3600, Clock("h", 1, "hourly")),
    (86400, Clock("D", 1, "daily")),
    (7 * 86400, Clock("D", 7, "weekly")),
]
MONTH_STEPS = {1: "monthly", 3: "quarterly", 12: "yearly"}
STEPLESS = Clock("", 1, "steps")


def parse_times(table: Table, names: list[str]) -> np.ndarray:
    """Times from one ISO-format column ("1949-01", "1981-01-01", "2010-01-02 13:00") or from calendar
    columns year, month, day[, hour]; (N,) datetime64. InputError at the first value that is not a time."""
    if len(names) == 1:
        texts = table.column(names[0])
    else:
        parts = [parse_numbers(table, name, missing_ok=False) for name in names]
        layout = ["{:04.0f}", "-{:02.0f}", "-{:02.0f}", "T{:02.0f}"]
        texts = ["".join(f.format(v) for f, v in zip(layout, values)) for values in zip(*parts)]
    try:
        return np.array(texts, dtype="datetime64")
    except ValueError:
        pass
    for i, text in enumerate(texts):
        try:
            np.datetime64(text)
        except ValueError:
            raise InputError(
                f"{table.place(i)}, column {'+'.join(names)}: {text!r} is not a date or "
                "time in ISO form (1949-01, 1981-01-31, 2010-01-02 13:00); fix it, or name another --time"
            ) from None
    raise AssertionError("numpy rejected the times as a whole but accepted each one")


def parse_steps(table: Table, name: str) -> np.ndarray:
    """Times that are whole numbers (integer steps 1, 2, 3...) from one column; (N,) int64."""
    values = parse_numbers(table, name, missing_ok=False)
    whole = values == np.round(values)
    if not whole.all():
        i = int(np.argmin(whole))
        raise InputError(
            f"{table.place(i)}, column {name!r}: {table.column(name)[i]!r} is not a whole number; "
            "integer time steps are 1, 2, 3..."
        )
    return values.astype(np.int64)


def detect_clock(table: Table, times: np.ndarray) -> Clock:
    """The series' step from the most common gap between consecutive times."""
    if len(times) < 2:
        raise InputError(f"{table.source()}: a single row is not a series; give at least a few rows")
    unit = np.datetime_data(times.dtype)[0]
    if unit in ("M", "Y"):
        months = times.astype("datetime64[M]").astype(np.int64)
        step = int(np.median(np.diff(months)))
        return Clock("M", max(step, 1), MONTH_STEPS.get(step, "steps"))
    seconds = np.diff(times.astype("datetime64[s]").astype(np.int64))
    step = int(np.median(seconds))
    for length, clock in STEPS:
        if step == length:
            return clock
    for days, months in ((28, 1), (89, 3), (365, 12)):  # dates on (about) the same day of each period
        if days * 86400 <= step <= (days + 3) * 86400:
            return Clock("M", months, MONTH_STEPS[months])
    return Clock("s", max(step, 1), "steps")


# ---- the cleaned series --------------------------------------------------------------------------------
@dataclass
class Series:
    """A regular series: one row per time step, no missing values, ready for windows."""

    target: str
    values: np.ndarray  # (N,) the target
    features: np.ndarray  # (N, F): the numeric features, then the one-hot columns
    feature_names: list[str]
    numeric_features: int  # the first this many feature columns are numeric (and get scaled)
    categories: dict[str, list[str]]  # categorical column -> its labels, in one-hot order
    times: np.ndarray | None  # (N,) datetime64, or None: the row order is the time
    clock: Clock
    time_name: str  # the time column(s), for axis labels and the forecast CSV
    missing: dict[str, int] = field(default_factory=dict)  # column -> values filled in
    notes: list[str] = field(default_factory=list)  # what was repaired, for the report


def load_series(
    path,
    target: str,
    time: list[str] | None = None,
    features: list[str] = (),
    categories: dict[str, list[str]] | None = None,
) -> Series:
    """Read PATH (a CSV file, or a pandas DataFrame read as that CSV would be) and return the regular,
    gap-free series of TARGET with FEATURES as extra inputs.

    time: the time column(s); None: the first column if it holds dates, else year/month/day[/hour] columns
    if present, else no times. Categorical features (non-numeric values) are one-hot encoded, with the
    labels of ``categories`` when given (from training). Missing times are inserted; missing values are
    interpolated linearly along time (the last known value carried forward at the end); rows before the
    first complete one are dropped. A time column named ds (Nixtla's) of whole numbers holds integer
    steps, not years: the Series then has no times (the row order is the time, missing steps inserted).
    """
    table = read_table(path) if isinstance(path, (str, Path)) else table_from_frame(path)
    steps = list(time or []) == ["ds"] and all(
        text.lstrip("-").isdigit() for text in table.column("ds") if text.lower() not in MISSING
    )
    series = series_from_table(table, target, time, features, categories, steps=steps)
    if steps:
        series.times = None
    return series


def series_from_table(
    table: Table,
    target: str,
    time: list[str] | None = None,
    features: list[str] = (),
    categories: dict[str, list[str]] | None = None,
    *,
    steps: bool = False,
) -> Series:
    """The regular, gap-free series of TARGET in TABLE (a file's, or one series' rows of it), as
    ``load_series`` describes. steps: TIME is one column of whole numbers (1, 2, 3...), put on a grid of
    step 1 as times are; the Series' times are then those numbers (int64) and its clock STEPLESS."""
    table.index(target)
    for name in features:
        table.index(name)
    time = guess_time_columns(table, target, features) if time is None else list(time)
    times = None
    if steps:
        times = parse_steps(table, time[0])
    elif time:
        times = parse_times(table, time)
    values = parse_numbers(table, target)
    if categories is None:
        numeric = [name for name in features if is_numeric(table.column(name))]
    else:
        numeric = [name for name in features if name not in categories]
    columns = [values] + [parse_numbers(table, name) for name in numeric]
    names, fixed = list(numeric), {}
    for name in (n for n in features if n not in numeric):
        codes, fixed[name] = one_hot(table, name, (categories or {}).get(name))
        columns.extend(codes.T)
        names.extend(f"{name}={label}" for label in fixed[name])
    data = np.stack(columns, axis=1)  # (N, 1 + F)
    clock, notes = STEPLESS, []
    if times is not None:
        clock = STEPLESS if steps else detect_clock(table, times)
        times, data, notes = regularise(table, times, data, clock)
    data, missing, more_notes = fill_missing(table, data, [target, *numeric], fixed)
    times = None if times is None else times[len(times) - len(data) :]
    return Series(
        target,
        data[:, 0],
        data[:, 1:],
        names,
        len(numeric),
        fixed,
        times,
        clock,
        "+".join(time) if time else "step",
        missing,
        notes + more_notes,
    )


def guess_time_columns(table: Table, target: str, features: list[str]) -> list[str]:
    """The first column if it holds ISO dates, else the calendar columns year, month, day[, hour]."""
    first, value = table.header[0], table.rows[0][0].strip()
    if first != target and first not in features and not is_numeric([value]):  # "1949-01", not "1"
        try:
            np.datetime64(value)
            return [first]
        except ValueError:
            pass
    lower = {name.lower(): name for name in table.header}
    if all(name in lower for name in CALENDAR_COLUMNS[:3]):
        return [lower[name] for name in CALENDAR_COLUMNS if name in lower]
    return []


def regularise(table: Table, times: np.ndarray, data: np.ndarray, clock: Clock):
    """Put the rows on the regular grid of ``clock``, inserting rows of NaN for missing times."""
    if clock.unit == "M":
        times = times.astype("datetime64[M]")  # monthly data dated 1949-01-31 or 1949-01-01: 1949-01
    positions = clock.positions(times)
    steps = np.diff(positions)
    exact = np.ones(len(times), bool)  # whole numbers are on the grid of step 1
    if clock.unit:
        exact = times == times.astype(f"datetime64[{clock.unit}]").astype(times.dtype)
    bad = np.flatnonzero(steps <= 0)
    if len(bad):
        i = bad[0] + 1
        raise InputError(
            f"{table.place(i)}: time {times[i]} does not come after the previous row's "
            f"{times[i - 1]}; sort the rows by time and remove duplicates"
        )
    if not exact.all() or len(np.unique(positions)) != len(positions):
        i = int(np.argmin(exact))
        raise InputError(
            f"{table.place(i)}: time {times[i]} is off the {clock.frequency} grid; "
            "the series must have regular time steps"
        )
    grid = np.arange(positions[0], positions[-1] + 1)
    if len(grid) == len(positions):
        return times, data, []
    full = np.full((len(grid), data.shape[1]), np.nan)
    full[positions - positions[0]] = data
    all_times = clock.later(times[0], len(grid) - 1)
    all_times = np.concatenate([times[:1], all_times])
    absent = all_times[np.isin(grid, positions, invert=True)]
    shown = ", ".join(clock.format(absent[:5])) + (", ..." if len(absent) > 5 else "")
    what = f"{clock.frequency} time(s)" if clock.unit else "step(s)"
    note = f"{len(absent)} missing {what} inserted and interpolated: {shown}"
    return all_times, full, [note]


def fill_missing(table: Table, data: np.ndarray, numeric: list[str], categorical: dict[str, list[str]]):
    """Drop the rows before the first complete one, interpolate numeric gaps linearly, carry labels forward.

    Returns the data, the count of missing values per column (dropped or filled) and notes for the report.
    """
    complete = ~np.isnan(data).any(axis=1)
    if not complete.any():
        raise InputError(
            f"{table.source()}: no row has a value in every column used "
            f"({', '.join(numeric + list(categorical))}); fill in the values or leave out the empty feature"
        )
    first = int(np.argmax(complete))
    widths = [1] * len(numeric) + [len(labels) for labels in categorical.values()]
    starts = np.cumsum([0] + widths[:-1])
    gaps = {
        name: np.isnan(data[:, j : j + width]).any(axis=1)
        for name, j, width in zip([*numeric, *categorical], starts, widths)
    }
    missing = {name: int(rows.sum()) for name, rows in gaps.items() if rows.any()}
    data = data[first:].copy()
    steps = np.arange(len(data))
    for (name, rows), j, width in zip(gaps.items(), starts, widths):
        rows = rows[first:]
        if width == 1 and name in numeric:
            data[rows, j] = np.interp(steps[rows], steps[~rows], data[~rows, j])  # flat past the last
        else:
            for i in np.flatnonzero(rows):
                data[i, j : j + width] = data[i - 1, j : j + width]  # row 0 is complete, so i >= 1
    notes = []
    if missing:
        counts = ", ".join(f"{name} {count}" for name, count in missing.items())
        dropped = (
            f"the first {first} row(s) dropped (before the first complete row), the rest " if first else ""
        )
        notes.append(f"missing values: {counts}; {dropped}interpolated along time")
    return data, missing, notes


# ---- season --------------------------------------------------------------------------------------------
def seasonal_strength(values: np.ndarray, season: int) -> float:
    """How much of the detrended variation a fixed seasonal profile explains (Wang, Smith & Hyndman 2006):

        d_t = y_t - (moving average of y over one season centred on t)      detrended
        r_t = d_t - mean(d at the same position in the season)              remainder
        F   = max(0, 1 - Var(r) / Var(d))                                   in [0, 1]

    0 for season 1 or a series shorter than two seasons and a step.
    """
    if season <= 1 or len(values) < 2 * season + 1:
        return 0.0
    kernel = np.ones(season + 1 - season % 2)  # a 2 x s moving average when s is even
    kernel[[0, -1]] = 0.5 if season % 2 == 0 else 1.0
    trend = np.convolve(values, kernel / season, mode="valid")
    offset = len(kernel) // 2
    detrended = values[offset : offset + len(trend)] - trend
    phase = (np.arange(len(detrended)) + offset) % season
    profile = np.bincount(phase, detrended, season) / np.bincount(phase, minlength=season)
    remainder = detrended - profile[phase]
    return float(max(0.0, 1.0 - remainder.var() / detrended.var())) if detrended.var() > 0 else 0.0


def detect_season(values: np.ndarray, frequency: str) -> tuple[int, str]:
    """The season length for a frequency and why: hourly 24, weekly 52, monthly 12, quarterly 4; daily data
    takes 365 when its yearly pattern is stronger than its weekly one (temperatures), else 7 (sales)."""
    candidates, default = SEASONS[frequency]
    if len(candidates) == 1:
        return default, f"{frequency} data"
    strength = {season: seasonal_strength(values, season) for season in candidates}
    best = max(strength, key=strength.get)
    season = best if strength[best] > strength[default] else default
    shown = ", ".join(f"{s}: {f:.2f}" for s, f in strength.items())
    return season, f"{frequency} data, the strongest seasonal pattern (strength {shown})"


def spread_grows_with_level(values: np.ndarray, season: int) -> bool:
    """True for a positive series whose ups and downs grow with its level (multiplicative seasonality, as
    airline passengers): over blocks of one season (at least 4 steps), the correlation of the blocks'
    means and standard deviations is at least 0.5 and the highest mean at least 1.5 x the lowest."""
    block = max(season, 4)
    count = len(values) // block
    if count < 4 or (values <= 0).any():
        return False
    blocks = values[: count * block].reshape(count, block)
    means, spreads = blocks.mean(axis=1), blocks.std(axis=1)
    if spreads.std() == 0:
        return False
    return bool(np.corrcoef(means, spreads)[0, 1] >= 0.5 and means.max() >= 1.5 * means.min())
