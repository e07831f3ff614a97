"""Training-curve and other plots, written as PNG files with matplotlib's Agg backend."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lstmkit.files import write_atomic  # noqa: E402


def save_figure(fig, path: Path) -> None:
    """Render the figure to PNG and write it atomically, then free it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def _smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average, so a noisy per-step loss shows its trend."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot_loss_curve(history: dict[str, list], path: Path, title: str, loss_name: str = "loss") -> None:
    """Training loss per step (raw and smoothed) and validation loss, on one set of axes."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    steps, train = history["step"], history["train_loss"]
    if steps:
        ax.plot(steps, train, color="tab:blue", alpha=0.25, linewidth=0.8, label="training (per step)")
        window = max(1, len(train) // 50)
        ax.plot(steps, _smooth(train, window), color="tab:blue", label=f"training (mean of {window} steps)")
    if history["val_step"]:
        ax.plot(history["val_step"], history["val_loss"], "o-", color="tab:orange", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(loss_name)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


FORECAST_STYLES = {  # name -> (legend text, matplotlib style)
    "LSTM": ("LSTM", {"color": "tab:blue", "linewidth": 1.8}),
    "naive": ("naive: last value", {"color": "tab:gray", "linestyle": "--", "linewidth": 1.1}),
    "seasonal_naive": (
        "seasonal naive: one season before",
        {"color": "tab:orange", "linestyle": ":", "linewidth": 1.4},
    ),
}


def _forecast_paths(times, values, origins, forecast, horizon):
    """Forecasts from every H-th origin (the last one included) as one line broken by NaN; each path
    starts at its origin's observed value. With H = 1: the one-step forecasts joined up."""
    if horizon == 1:
        return times[origins + 1], forecast[:, 0]
    xs, ys = [], []
    for row in range(len(origins) - 1, -1, -horizon):
        t = origins[row]
        xs += [*times[t : t + horizon + 1], times[t]]  # the repeated x goes with the NaN break
        ys += [values[t], *forecast[row], np.nan]
    return np.array(xs), np.array(ys)


def _draw_forecasts(ax, times, values, origins, forecasts, maes, start, value_label):
    """Actual values from ``start`` on, the test part shaded, each forecaster's paths from there."""
    test_start = max(origins[0] + 1, start)
    ax.axvspan(times[test_start], times[-1], color="tab:green", alpha=0.06, label="test part")
    ax.plot(times[start:], values[start:], color="black", linewidth=1.2, label=f"actual {value_label}")
    keep = origins >= start
    horizon = next(iter(forecasts.values())).shape[1]
    for name, forecast in forecasts.items():
        text, style = FORECAST_STYLES.get(name, (name, {}))
        x, y = _forecast_paths(times, values, origins[keep], forecast[keep], horizon)
        ax.plot(x, y, label=f"{text} (test MAE {maes[name]:.3g})", **style)
    ax.set_xlim(times[start], times[-1])
    ax.grid(alpha=0.3)


def _draw_errors_by_step(ax, values, origins, forecasts, value_label, step_name):
    """MAE at each number of steps ahead, 1..H, over all origins of the test part."""
    horizon = next(iter(forecasts.values())).shape[1]
    actual = values[origins[:, None] + np.arange(1, horizon + 1)]  # (O, H)
    steps = np.arange(1, horizon + 1)
    for name, forecast in forecasts.items():
        text, style = FORECAST_STYLES.get(name, (name, {}))
        ax.plot(steps, np.abs(forecast - actual).mean(axis=0), marker="o", markersize=3, label=text, **style)
    ax.set_xlabel(f"{step_name}s ahead")
    ax.set_ylabel(f"mean absolute error ({value_label})")
    ax.set_title("error by steps ahead, over every forecast origin of the test part")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)


def plot_forecast(
    path: Path,
    times: np.ndarray,
    values: np.ndarray,
    origins: np.ndarray,
    forecasts: dict[str, np.ndarray],
    maes: dict[str, float],
    context: int,
    time_label: str,
    value_label: str,
    title: str,
    step_name: str = "step",
) -> None:
    """Forecasts against the actual values on the test part, with ``context`` steps before it.

    times, values: (N,) the whole series (datetime64 or step numbers); origins: (O,) the forecast origins
    (last observed step); forecasts: name -> (O, H) values for origin + 1..H; maes: name -> test MAE;
    step_name: what a step is ("month", "day"), for the labels.
    A long test part is shown whole with the first forecaster only, then its last steps enlarged with all;
    with H > 1 a last panel shows the error by steps ahead.
    """
    if np.issubdtype(times.dtype, np.datetime64):
        times = times.astype("datetime64[s]")
    horizon = next(iter(forecasts.values())).shape[1]
    zoom = max(8 * horizon, 60)
    long_test = len(values) - origins[0] - 1 > 2 * zoom
    panels = 1 + long_test + (horizon > 1)
    fig, axes = plt.subplots(panels, 1, figsize=(11, 1 + 3.6 * panels), dpi=110, squeeze=False)
    axes = list(axes[:, 0])
    how = (
        f"each forecast made from the actual values up to the {step_name} before"
        if horizon == 1
        else f"{horizon}-{step_name} paths from every {horizon}th {step_name}, each from its last known value"
    )
    first = dict(list(forecasts.items())[:1]) if long_test else forecasts
    _draw_forecasts(
        axes[0], times, values, origins, first, maes, max(0, origins[0] + 1 - context), value_label
    )
    axes[0].set_title(f"{title}\n{how}" + (" (the whole test part)" if long_test else ""))
    if long_test:
        _draw_forecasts(axes[1], times, values, origins, forecasts, maes, len(values) - zoom, value_label)
        axes[1].set_title(f"the last {zoom} {step_name}s, enlarged")
    for ax in axes[: 1 + long_test]:
        ax.set_xlabel(time_label)
        ax.set_ylabel(value_label)
        ax.legend(loc="upper left", fontsize=9, framealpha=0.9)
    if horizon > 1:
        _draw_errors_by_step(axes[-1], values, origins, forecasts, value_label, step_name)
    fig.tight_layout()
    save_figure(fig, path)


def plot_panel_forecasts(
    path: Path,
    names: list[str],
    series: list[np.ndarray],
    origins: list[int],
    forecasts: list[np.ndarray],
    lows: list[np.ndarray],
    highs: list[np.ndarray],
    title: str,
) -> None:
    """A grid, one panel per series: its values (N_i,) around its first test origin, the forecast (H,)
    from that origin and its interval [low, high] (H,)."""
    columns = 2 if len(names) > 1 else 1
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(11, 0.6 + 2.6 * rows), dpi=110, squeeze=False)
    for ax, name, values, origin, forecast, low, high in zip(
        axes.flat, names, series, origins, forecasts, lows, highs
    ):
        horizon = len(forecast)
        start = max(0, origin + 1 - 3 * horizon)
        shown = np.arange(start, min(len(values), origin + 1 + horizon))
        ahead = origin + 1 + np.arange(horizon)
        ax.plot(shown, values[shown], color="black", linewidth=1, label="actual")
        ax.plot(ahead, forecast, color="tab:blue", linewidth=1.4, label="lstmkit")
        ax.fill_between(ahead, low, high, color="tab:blue", alpha=0.2, label="95% interval")
        ax.axvline(origin + 0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(str(name), fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)


MEMORY_COLORS = {"lstm": "tab:blue", "gru": "tab:green", "rnn": "tab:red"}


def _memory_reference_lines(ax, record: dict) -> None:
    """The memoryless baseline and the solved threshold as horizontal lines."""
    ax.axhline(
        record["baseline"],
        color="gray",
        linestyle="--",
        linewidth=1.0,
        label=f"baseline, {record['baseline_name']} ({record['baseline']:.3g})",
    )
    ax.axhline(
        record["solved_below"],
        color="black",
        linestyle=":",
        linewidth=1.0,
        label=f"solved below {record['solved_below']:g}",
    )


def _error_floor(record: dict) -> float:
    """Where an error of 0 is drawn on a log axis: a tenth of the smallest non-zero value shown."""
    values = [e for r in record["results"] for e in r["history"]["test_error"] if e > 0]
    return min([record["solved_below"], *values]) / 10


def plot_memory_errors(
    path: Path, record: dict, names: dict[str, str], title: str, length_label: str
) -> None:
    """Against lag length, one line per model: the test error at the end of each run, and the steps it
    took to solve (the steps run, a lower bound, where it was not solved); filled markers: solved."""
    fig, (ax_error, ax_steps) = plt.subplots(1, 2, figsize=(13, 5), dpi=110)
    floor = _error_floor(record)
    for order, (kind, name) in enumerate(names.items()):
        runs = sorted((r for r in record["results"] if r["model"] == kind), key=lambda r: r["length"])
        if not runs:
            continue
        lengths = [r["length"] for r in runs]
        color, width, size = (
            MEMORY_COLORS[kind],
            2.6 - 0.6 * order,
            11 - 2 * order,
        )  # equal values stay visible
        for ax, values in (
            (ax_error, [max(r["test_error"], floor) for r in runs]),
            (ax_steps, [r["steps"] for r in runs]),
        ):
            ax.plot(lengths, values, color=color, linewidth=width, label=name)
            for r, value in zip(runs, values):
                face = color if r["solved"] else "white"
                ax.plot(r["length"], value, "o", markersize=size, color=color, markerfacecolor=face)
    _memory_reference_lines(ax_error, record)
    for ax in (ax_error, ax_steps):
        ax.plot([], [], "o", color="gray", label="solved")
        ax.plot([], [], "o", color="gray", markerfacecolor="white", label="not solved in the budget")
        lengths = sorted({r["length"] for r in record["results"]})
        if lengths[-1] >= 5 * lengths[0]:
            ax.set_xscale("log")
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel(f"lag: {length_label} (steps)")
        ax.grid(alpha=0.3, which="both")
    zero = any(r["test_error"] == 0 for r in record["results"])
    note = f" (0 drawn at {floor:.1g})" if zero else ""
    ax_error.set_ylabel(f"test {record['error_name']} on fresh sequences (log scale)")
    ax_error.set_title(f"test error at the end of each run{note}", fontsize=10)
    ax_error.legend(fontsize=8, loc="best")
    ax_steps.set_ylabel("optimizer steps (log scale)")
    ax_steps.set_title("steps to solve (where not solved: the steps run in the budget)", fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_memory_curves(path: Path, record: dict, names: dict[str, str], title: str) -> None:
    """Test error against training time, one panel per lag length, one line per model."""
    lengths = sorted({r["length"] for r in record["results"]})
    columns = min(3, len(lengths))
    rows = math.ceil(len(lengths) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(4.5 * columns + 1.5, 3.6 * rows + 1.1), dpi=110, squeeze=False, sharey=True
    )
    floor = _error_floor(record)
    for ax, length in zip(axes.flat, lengths):
        for kind, name in names.items():
            for r in record["results"]:
                if r["model"] == kind and r["length"] == length:
                    minutes = [s / 60 for s in r["history"]["seconds"]]
                    errors = [max(e, floor) for e in r["history"]["test_error"]]
                    ax.plot(minutes, errors, color=MEMORY_COLORS[kind], linewidth=1.4, label=name)
        _memory_reference_lines(ax, record)
        ax.set_yscale("log")
        ax.set_title(f"T = {length}", fontsize=10)
        ax.set_xlabel("training time (minutes)")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"test {record['error_name']} (log scale)")
    for ax in list(axes.flat)[len(lengths) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(f"{title}\ntest error during training; a run stops when solved", fontsize=10)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    save_figure(fig, path)


def _positive(values: list[float]) -> np.ndarray:
    """Values for a log axis: zeros (float32 underflow) become gaps in the line."""
    array = np.asarray(values, dtype=float)
    return np.where(array > 0, array, np.nan)


def plot_state_gradients(path: Path, gradients: dict, names: dict[str, str], title: str) -> None:
    """‖dL/dh_t‖ (and ‖dL/dc_t‖) against t, untrained and trained side by side, log scale."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110, sharey=True)
    for ax, stage in zip(axes, ("untrained", "trained")):
        for kind, name in names.items():
            if kind not in gradients:
                continue
            measured = gradients[kind][stage]
            steps = np.arange(1, len(measured["h"]) + 1)
            color = MEMORY_COLORS[kind]
            ax.plot(
                steps,
                _positive(measured["h"]),
                color=color,
                linewidth=1.5,
                label=f"{name}: ‖∂L/∂h_t‖",
            )
            if measured["c"] is not None:
                ax.plot(
                    steps,
                    _positive(measured["c"]),
                    color=color,
                    linestyle="--",
                    linewidth=1.5,
                    label=f"{name}: ‖∂L/∂c_t‖ (cell state)",
                )
        ax.set_yscale("log")
        ax.set_xlabel("time step t (the loss is taken at the end; gaps: exactly 0 in float32)")
        ax.set_title(f"{stage}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("gradient norm, mean over 100 test sequences (log scale)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
