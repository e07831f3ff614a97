"""GateRecord: what a model's LSTM did while it read one input, ready to plot, view in HTML or save as JSON.

No matplotlib here: notebooks and the HTML viewer use this without the plotting stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lstmkit.trace import GateTrace

QUANTITIES = {  # trace field -> its name in pictures and pages
    "input_gate": "input gate i",
    "forget_gate": "forget gate f",
    "candidate": "candidate g",
    "output_gate": "output gate o",
    "cell": "cell state c",
    "hidden": "hidden state h",
}
MEANINGS = {  # trace field -> what its value means, for a newcomer
    "input_gate": "how much of the candidate is written into the cell: 0 nothing, 1 all of it",
    "forget_gate": "how much of the cell's memory is kept: 1 keep, 0 erase",
    "candidate": "the new information offered to the cell, from -1 to 1",
    "output_gate": "how much of the cell is let out as the output h: 0 none, 1 all",
    "cell": "the long-term memory: c = f * c_prev + i * g",
    "hidden": "the output and short-term memory: h = o * tanh(c)",
}
VISIBLE = {
    " ": "\u2423",
    "\n": "\u21b5",
    "\t": "\u21e5",
    "\r": "\\r",
}  # whitespace as ␣ ↵ ⇥ \r (fonts lack ␍)
GATES = ("input_gate", "forget_gate", "output_gate")  # the sigmoid gates, values in (0, 1)
SATURATED_LOW, SATURATED_HIGH = 0.1, 0.9  # a gate below / above these is "closed" / "open" at that step


@dataclass
class GateRecord:
    """One input read by one model: per trace row (layer, direction), step and unit, every gate and state."""

    task: str  # charlm, sentiment, classify, forecast
    title: str  # what was inspected, for headings
    tokens: list[str]  # what each step reads, as shown: a character, a word, a value
    token_kind: str  # "character", "word" or "value": axis labels, and how the page lays out tokens
    rows: list[str]  # the trace rows: "layer 1", or "layer 1, forward" / "layer 1, backward"
    values: dict[str, np.ndarray]  # QUANTITIES name -> (R, T, H) float32
    summary: str = ""  # the model's output in words ("predicted: pos, probability 0.93")
    notes: list[str] = field(default_factory=list)  # per step, more about it (charlm: the next-char guess)
    unknown: list[int] = field(default_factory=list)  # steps whose token the model does not know
    series: list[float] | None = None  # numeric tasks: the value read at each step, for a line plot
    series_name: str = ""  # what ``series`` is

    @classmethod
    def from_trace(cls, trace: GateTrace, bidirectional: bool, **fields) -> GateRecord:
        """From the trace of one unbatched sequence, each field (layers * directions, T, H)."""
        values = {name: getattr(trace, name).detach().cpu().float().numpy() for name in QUANTITIES}
        if values["hidden"].shape != values["cell"].shape:
            raise ValueError("inspect needs hidden and cell of one size (no proj_size)")
        count = values["cell"].shape[0]
        if bidirectional:
            rows = [f"layer {r // 2 + 1}, {('forward', 'backward')[r % 2]}" for r in range(count)]
        else:
            rows = [f"layer {r + 1}" for r in range(count)]
        return cls(rows=rows, values=values, **fields)

    @property
    def hidden_size(self) -> int:
        return self.values["cell"].shape[2]

    def to_json(self, decimals: int = 6) -> dict:
        """A JSON-able dict: the fields, with values[name][row][step][unit] rounded to DECIMALS."""
        return {
            "task": self.task,
            "title": self.title,
            "summary": self.summary,
            "token_kind": self.token_kind,
            "tokens": self.tokens,
            "notes": self.notes,
            "unknown": self.unknown,
            "series": self.series,
            "series_name": self.series_name,
            "rows": self.rows,
            "hidden_size": self.hidden_size,
            "layout": "values[quantity][row][step][unit]; rows as in 'rows', steps as in 'tokens'",
            "meanings": MEANINGS,
            "values": {
                name: np.round(v.astype(np.float64), decimals).tolist() for name, v in self.values.items()
            },
        }


def shown(token: str) -> str:
    """A token as a label: a whitespace character as a visible symbol."""
    return VISIBLE.get(token, token)


def varying_units(record: GateRecord, row: int, count: int) -> list[int]:
    """The COUNT units of trace row ROW whose gates vary most over the steps, most first: the sum over
    i, f, g, o of each unit's standard deviation over the steps."""
    spread = sum(
        record.values[name][row].std(axis=0) for name in QUANTITIES if name not in ("cell", "hidden")
    )
    return np.argsort(-spread, kind="stable")[:count].tolist()  # spread: (H,)


def saturation(gate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the fraction of steps where GATE (T, H) is below SATURATED_LOW and above SATURATED_HIGH.

    A forget gate that is almost always above 0.9 keeps its cell over long spans (an integrator unit);
    one that often drops below 0.1 wipes its cell at certain inputs (a reset unit). Returns (H,), (H,).
    """
    return (gate < SATURATED_LOW).mean(axis=0), (gate > SATURATED_HIGH).mean(axis=0)
