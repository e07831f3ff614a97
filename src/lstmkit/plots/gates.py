"""Gate pictures: heatmaps of i, f, g, o and c over the steps of one input, and per-gate summaries."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.patches import Rectangle

from lstmkit.plots.plots import plt, save_figure
from lstmkit.plots.record import (
    GATES,
    MEANINGS,
    QUANTITIES,
    SATURATED_HIGH,
    SATURATED_LOW,
    GateRecord,
    saturation,
    shown,
    varying_units,
)

HEATMAPS = ("input_gate", "forget_gate", "candidate", "output_gate", "cell")
SCALE_ENDS = {  # colour-bar end labels of the sigmoid gates
    "input_gate": ("0 write nothing", "1 write all"),
    "forget_gate": ("0 erase", "1 keep"),
    "output_gate": ("0 hide", "1 show"),
}
GATE_COLOURS = {"input_gate": "tab:green", "forget_gate": "tab:blue", "output_gate": "tab:orange"}
MAX_WIDTH = 26.0  # inches of steps, at most; longer inputs get narrower steps and fewer labels
MIN_WIDTH = 5.5  # inches of steps, at least
STEP_WIDTH = {"character": 0.2, "word": 0.5, "value": 0.2}  # inches per step, when they fit in MAX_WIDTH


def _scale(name: str, values: np.ndarray) -> tuple[str, float, float]:
    """Colour map and range: gates 0..1, the candidate -1..1, the cell symmetric around 0."""
    if name in GATES:
        return "viridis", 0.0, 1.0
    if name == "candidate":
        return "RdBu_r", -1.0, 1.0
    bound = max(float(np.abs(values).max()), 1e-6)
    return "PuOr_r", -bound, bound


def _numbered(record: GateRecord, step_width: float) -> bool:
    """Whether the x axis numbers the steps: values, or tokens too many to label each one."""
    if record.token_kind == "value":
        return True
    longest = max(len(token) for token in record.tokens)
    return step_width < (0.11 if record.token_kind == "character" else min(0.16, longest * 0.075))


def _label_steps(ax, record: GateRecord, step_width: float) -> None:
    """The tokens along the x axis when each fits (unknown ones grey), else step numbers."""
    steps = len(record.tokens)
    if _numbered(record, step_width):
        ticks = list(range(0, steps, max(1, math.ceil(steps / 30))))
        ax.set_xticks(ticks, [str(t + 1) for t in ticks], fontsize=8)
        return
    characters = record.token_kind == "character"
    flat = characters or max(len(token) for token in record.tokens) * 0.075 <= step_width
    ax.tick_params(axis="x", length=0, pad=2)
    ax.set_xticks(
        range(steps),
        [shown(token) for token in record.tokens],
        fontsize=9 if characters else 8,
        family="monospace" if characters else None,
        rotation=0 if flat else 60,
        ha="center" if flat else "right",
        rotation_mode="anchor",
    )
    for step in record.unknown:
        ax.get_xticklabels()[step].set_color("0.6")


def plot_gate_heatmaps(record: GateRecord, path: Path, **options) -> None:
    """Write ``heatmap_figure(record, **options)`` as a PNG."""
    save_figure(heatmap_figure(record, **options), path)


def heatmap_figure(
    record: GateRecord,
    units: list[int] | None = None,
    count: int = 8,
    rows: list[int] | None = None,
    why: str = "",
    marks: tuple[int, ...] = (),
):
    """Per trace row (layer, direction; ROWS, default all): i, f, g, o and c of UNITS (default: the COUNT
    whose gates vary most) at each step, the tokens along the axis, one colour bar per panel; WHY says
    how the units were chosen; the steps MARKS are outlined in red. Laid out in inches."""
    steps, rows = len(record.tokens), list(range(len(record.rows))) if rows is None else rows
    chosen = {row: units or varying_units(record, row, count) for row in rows}
    step_width = min(STEP_WIDTH[record.token_kind], MAX_WIDTH / steps)
    step_width = max(step_width, MIN_WIDTH / steps)  # a short input gets wider steps
    longest = min(max(len(token) for token in record.tokens), 14)
    flat = _numbered(record, step_width) or longest * 0.075 <= step_width
    labels = 0.35 if flat else 0.05 * longest + 0.25  # room for the tick labels, inches
    title, gap, left, right = 0.3, 0.15, 0.95, 1.45
    width = left + steps * step_width + right
    if not why:
        why = "those whose gates vary most" if units is None else "units " + ", ".join(map(str, units))
    header = "\n".join(
        textwrap.fill(line, int(width / 0.085))
        for line in (
            f"lstmkit inspect: {record.title}",
            record.summary,
            f"Each panel shows one unit per row and one step per column; the units shown are {why}.",
        )
    )
    bodies = {row: max(0.5, 0.19 * len(chosen[row])) for row in rows}
    height = (
        0.25
        + 0.19 * header.count("\n")
        + (1.7 if record.series is not None else 0)
        + sum(len(HEATMAPS) * (title + body + labels) + gap for body in bodies.values())
    )
    fig = plt.figure(figsize=(width, height), dpi=110)
    fig.text(0.01, 1 - 0.12 / height, header, fontsize=10, va="top")
    top = height - 0.25 - 0.19 * header.count("\n")

    def place(body: float) -> tuple:
        """Axes of height BODY (inches) under room for a title, and the box for its colour bar."""
        nonlocal top
        bottom = top - title - body
        top = bottom - labels
        ax = fig.add_axes([left / width, bottom / height, steps * step_width / width, body / height])
        return ax, [(width - right + 0.12) / width, bottom / height, 0.12 / width, body / height]

    if record.series is not None:
        ax, _ = place(1.1)
        ax.plot(range(steps), record.series, marker="o", markersize=3, color="black", linewidth=1)
        ax.set_xlim(-0.5, steps - 0.5)
        ax.set_title(f"input: {record.series_name}", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        _label_steps(ax, record, step_width)
    for row in rows:
        for name in HEATMAPS:
            ax, bar_box = place(bodies[row])
            values = record.values[name][row][:, chosen[row]]  # (T, units)
            cmap, low, high = _scale(name, values)
            image = ax.imshow(
                values.T, aspect="auto", cmap=cmap, vmin=low, vmax=high, interpolation="nearest"
            )
            ax.set_yticks(range(len(chosen[row])), [f"unit {u}" for u in chosen[row]], fontsize=7)
            ax.set_title(f"{record.rows[row]}: {QUANTITIES[name]} ({MEANINGS[name]})", fontsize=9, loc="left")
            _label_steps(ax, record, step_width)
            for step in marks:
                box = Rectangle(
                    (step - 0.5, -0.5), 1, len(chosen[row]), fill=False, edgecolor="red", linewidth=1.4
                )
                ax.add_patch(box)
            bar = fig.colorbar(image, cax=fig.add_axes(bar_box))
            bar.ax.tick_params(labelsize=7)
            if name in SCALE_ENDS:
                bar.set_ticks([0, 1], labels=list(SCALE_ENDS[name]))
        top -= gap
    if record.token_kind == "value":
        fig.text(
            0.01, 0.1 / height, "steps: the LSTM reads one step after another, left to right", fontsize=8
        )
    elif _numbered(record, step_width):
        note = f"steps numbered: too many {record.token_kind}s to label each; the HTML viewer shows them all"
        fig.text(0.01, 0.1 / height, note, fontsize=8)
    elif record.unknown:
        fig.text(0.01, 0.1 / height, f"grey labels: {record.token_kind}s the model does not know", fontsize=8)
    return fig


def plot_gate_summary(record: GateRecord, path: Path) -> None:
    """Write ``summary_figure`` as a PNG."""
    save_figure(summary_figure(record), path)


def summary_figure(record: GateRecord):
    """Per trace row and sigmoid gate: the histogram of its values over every step and unit, and each
    unit's fraction of steps closed (< 0.1) against open (> 0.9)."""
    rows = len(record.rows)
    fig, axes = plt.subplots(2 * rows, 3, figsize=(13, 1.0 + 7.2 * rows), dpi=110, squeeze=False)
    fig.suptitle(
        f"lstmkit inspect: {record.title}\nHow the gates behave over all {len(record.tokens)} steps "
        f"and {record.hidden_size} units of each layer",
        fontsize=11,
    )
    bins = np.linspace(0, 1, 41)
    for row in range(rows):
        for column, name in enumerate(GATES):
            gate = record.values[name][row]  # (T, H)
            colour = GATE_COLOURS[name]
            hist = axes[2 * row, column]
            hist.hist(gate.ravel(), bins=bins, color=colour, alpha=0.8)
            hist.axvspan(0, SATURATED_LOW, color="0.85", zorder=0)
            hist.axvspan(SATURATED_HIGH, 1, color="0.85", zorder=0)
            hist.set_xlim(0, 1)
            hist.set_title(
                f"{record.rows[row]}: {QUANTITIES[name]}\nits values (grey: saturated)", fontsize=9
            )
            hist.set_xlabel("gate value", fontsize=8)
            hist.set_ylabel("steps x units", fontsize=8)
            closed, open_ = saturation(gate)
            dots = axes[2 * row + 1, column]
            dots.plot([0, 1], [1, 0], linestyle="--", color="0.6", linewidth=0.8)
            dots.scatter(closed, open_, s=14, color=colour, alpha=0.6, edgecolors="none")
            dots.set_xlim(-0.03, 1.03)
            dots.set_ylim(-0.03, 1.03)
            dots.set_aspect("equal")
            dots.set_title(f"each dot is one unit ({record.hidden_size})", fontsize=9)
            dots.set_xlabel(f"fraction of steps closed (< {SATURATED_LOW})", fontsize=8)
            dots.set_ylabel(f"fraction of steps open (> {SATURATED_HIGH})", fontsize=8)
            dots.grid(alpha=0.3)
            if name == "forget_gate":
                note = {"fontsize": 8, "bbox": {"facecolor": "white", "alpha": 0.8, "edgecolor": "none"}}
                dots.annotate("integrators:\nkeep their memory", (0.06, 0.97), va="top", **note)
                dots.annotate("reset units:\noften erase", (0.97, 0.03), ha="right", **note)
            dots.annotate("on the dashed line:\nnever in between", (0.55, 0.6), fontsize=7, color="0.45")
    fig.text(
        0.01,
        0.003,
        "A unit whose forget gate is open (> 0.9) at almost every step carries its memory across the "
        "whole input (an integrator);\none whose forget gate often closes (< 0.1) erases its memory at "
        "certain inputs (a reset unit), such as the end of a sentence.",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
    return fig
