"""Writes the fixtures of ours in tests/data/ (see README.md there): the data sets whose licence is not
stated are not copied; these files have their format and quirks with content of our own.

    python tests/data/make_fixtures.py          # rewrites the files beside this script
    python tests/data/make_fixtures.py DIR      # writes them into DIR instead

Deterministic: every draw comes from `random.Random(seed).random()`, whose sequence Python keeps the same
across versions (its shuffle, choice and gauss it does not promise to keep), through the helpers below.
tests/test_fixtures.py runs it into a temporary folder and compares with the committed files.
"""

from __future__ import annotations

import datetime
import math
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Draws:
    """Uniform, normal, choice and shuffle from random.Random(seed).random() alone."""

    def __init__(self, seed: int):
        self.random = random.Random(seed).random

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def gauss(self, mean: float, std: float) -> float:  # Box-Muller
        u = 1.0 - self.random()  # (0, 1]
        return mean + std * math.sqrt(-2.0 * math.log(u)) * math.cos(2.0 * math.pi * self.random())

    def choice(self, items: list):
        return items[int(self.random() * len(items))]

    def shuffle(self, items: list) -> None:  # Fisher-Yates
        for i in range(len(items) - 1, 0, -1):
            j = int(self.random() * (i + 1))
            items[i], items[j] = items[j], items[i]


# ---- one-snippet-per-line review files, Windows-1252 -----------------------------------------------------
# Lower case, tokens split by spaces, punctuation spaced out, a space before each line end, a final "\n", as
# in the movie-review polarity files. Sentences written for these fixtures.
POSITIVE = [
    "a warm , funny and honest film",
    "the cast is terrific",
    "a gorgeous , witty ride",
    "one of the most touching stories of the year",
    "smart , moving and beautifully acted",
    "a delight from start to finish",
    "the director finds real grace in small moments",
    "it's a charming , clever little movie",
    "the performances are superb",
    "an inventive and heartfelt comedy",
    "a rare gem that earns its tears",
    "sharp writing and a lovely score",
    "fresh , lively and full of surprises",
    "the kind of film that stays with you",
    "a joyous celebration of friendship",
    "brilliantly shot and wonderfully paced",
    "tender without being sappy",
    "a bold , thrilling piece of work",
    "the jokes land and the heart is real",
    "an absorbing , intelligent drama",
    "as light and sweet as a caf\u00e9 cr\u00e8me",
    "the young lead is a revelation",
]
NEGATIVE = [
    "a dull , lifeless mess",
    "the script is a chore",
    "tedious and far too long",
    "one of the most forgettable films of the year",
    "clumsy , shallow and badly acted",
    "a bore from start to finish",
    "the director mistakes noise for drama",
    "it's a cheap , lazy little movie",
    "the performances are wooden",
    "a witless and joyless comedy",
    "a hollow exercise that never earns its tears",
    "flat writing and a grating score",
    "stale , sluggish and full of clich\u00e9s",
    "the kind of film you forget on the way out",
    "a tiresome parade of stereotypes",
    "murky to look at and badly paced",
    "sappy without being touching",
    "a timid , plodding piece of work",
    "the jokes fall flat and the heart is missing",
    "a muddled , pretentious drama",
    "na\u00efve to the point of silliness",
    "the young lead is lost at sea",
]
# How two parts are joined; the last three are cp1252's bytes 0x97 (em dash), 0x96 (en dash), 0x85 (ellipsis).
PLAIN_JOINS = [" , and ", " ; ", " . ", " , but then "]
QUIRKY_JOINS = [" \u2014 ", " \u2013 ", " \u2026 "]
REVIEWS_PER_CLASS = 150


def reviews(parts: list[str], seed: int) -> bytes:
    rng = Draws(seed)
    pairs = [(a, b) for a in parts for b in parts if a != b]
    rng.shuffle(pairs)
    lines = []
    for number, (a, b) in enumerate(pairs[:REVIEWS_PER_CLASS]):
        # one of each quirky byte among the first few lines, then about one line in five
        if number in (2, 5, 8):
            join = QUIRKY_JOINS[(2, 5, 8).index(number)]
        elif rng.random() < 0.2:
            join = rng.choice(QUIRKY_JOINS)
        else:
            join = rng.choice(PLAIN_JOINS)
        lines.append(f"{a}{join}{b} . \n")
    return "".join(lines).encode("cp1252")


# ---- UCR-format two-class heartbeat-like series ----------------------------------------------------------
# Old UCR ASCII: per line the label (-1 or 1) then the values, each written "%16.7e" (no other separator),
# "\n" line ends with a final one. Each series is z-normalised, as in the UCR archive. Class 1: a tall
# narrow R peak and an upright T wave; class -1: a lower, wider peak and an inverted T wave.
LENGTH = 96
SPLITS = {"BEATS_TRAIN.txt": (27, 13, 200), "BEATS_TEST.txt": (19, 11, 201)}  # (class 1, class -1, seed)


def bump(t: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((t - centre) / width) ** 2)


def beat(label: int, rng: Draws) -> list[float]:
    r = 22 + rng.uniform(-3, 3)
    if label == 1:
        height, width, t_wave = 3.0, 1.6, 0.8
    else:
        height, width, t_wave = 1.8, 3.0, -0.6
    drift = rng.uniform(-0.3, 0.3)
    values = [
        height * bump(t, r, width)
        - 0.6 * bump(t, r - 4, 1.5)
        - 0.8 * bump(t, r + 4, 1.5)
        + t_wave * bump(t, r + 35, 6)
        + drift * t / LENGTH
        + rng.gauss(0, 0.15)
        for t in range(LENGTH)
    ]
    mean = sum(values) / LENGTH
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / LENGTH)
    return [(v - mean) / std for v in values]


def ucr(ones: int, minus_ones: int, seed: int) -> bytes:
    rng = Draws(seed)
    labels = [1] * ones + [-1] * minus_ones
    rng.shuffle(labels)
    for position, label in enumerate((1, -1)):  # both classes within the first rows that tests slice off
        other = labels.index(label, position)
        labels[position], labels[other] = labels[other], labels[position]
    lines = ["".join(f"{v:16.7e}" for v in [float(label), *beat(label, rng)]) + "\n" for label in labels]
    return "".join(lines).encode("ascii")


# ---- a daily series with two absent days ----------------------------------------------------------------
# "Date","Temp" quoted header and dates, CRLF, no final newline; 1981-01-01..1990-12-31 without 1984-12-31 and
# 1988-12-31, as the daily minimum temperature file has it. A yearly cycle (warm in January) plus AR(1) noise.
ABSENT = {datetime.date(1984, 12, 31), datetime.date(1988, 12, 31)}


def daily_temperatures(seed: int = 300) -> bytes:
    rng = Draws(seed)
    day, last = datetime.date(1981, 1, 1), datetime.date(1990, 12, 31)
    rows, noise = ['"Date","Temp"'], 0.0
    while day <= last:
        noise = 0.7 * noise + rng.gauss(0, 2.0)
        if day not in ABSENT:
            season = 4.5 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365.25)
            rows.append(f'"{day.isoformat()}",{max(0.0, 11.2 + season + noise):.1f}')
        day += datetime.timedelta(days=1)
    return "\r\n".join(rows).encode("ascii")


# ---- three monthly series in one file, Nixtla's long format -----------------------------------------------
# Columns unique_id, ds, y, price (numeric), promo (categorical: off, tv, web); 2021-01..2022-12 for each
# store, ds written as the first of the month. The series' rows interleaved (a row of each store in turn)
# and store-2's in reverse order; store-1's y empty in 2021-06; store-3 without its 2022-03 row; LF, a final
# newline.
STORES = (("store-1", 120.0), ("store-2", 80.0), ("store-3", 200.0))  # (id, level)
MONTHS = 24
PROMOS = ["off", "off", "tv", "web"]  # not "none": that reads as a missing value


def store_rows(key: str, level: float, rng: Draws) -> list[str]:
    rows = []
    for k in range(MONTHS):
        month = f"{2021 + k // 12}-{k % 12 + 1:02d}-01"
        promo = rng.choice(PROMOS)
        lift = {"off": 0.0, "tv": 15.0, "web": 8.0}[promo]
        sales = level * (1 + 0.15 * math.sin(2 * math.pi * k / 12)) + 0.5 * k + lift + rng.gauss(0, 3)
        price = rng.uniform(9, 11)
        y = "" if (key, month) == ("store-1", "2021-06-01") else f"{sales:.1f}"
        if (key, month) != ("store-3", "2022-03-01"):
            rows.append(f"{key},{month},{y},{price:.2f},{promo}")
    return rows[::-1] if key == "store-2" else rows


def long_panel(seed: int = 400) -> bytes:
    rng = Draws(seed)
    series = [store_rows(key, level, rng) for key, level in STORES]
    lines = ["unique_id,ds,y,price,promo"]
    for k in range(MONTHS):
        lines.extend(rows[k] for rows in series if k < len(rows))
    return ("\n".join(lines) + "\n").encode("ascii")


def fixtures() -> dict[str, bytes]:
    """Each fixture's path under tests/data and its bytes."""
    files = {
        "reviews/reviews.pos": reviews(POSITIVE, seed=100),
        "reviews/reviews.neg": reviews(NEGATIVE, seed=101),
        "daily-temperatures.csv": daily_temperatures(),
        "stores-long.csv": long_panel(),
    }
    for name, (ones, minus_ones, seed) in SPLITS.items():
        files[f"ucr/{name}"] = ucr(ones, minus_ones, seed)
    return files


def main(folder: Path) -> None:
    for name, content in fixtures().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
