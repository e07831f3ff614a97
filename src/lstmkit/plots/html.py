"""The gate viewer: one self-contained HTML file (inline CSS and JS, the record as JSON, no URLs).

The text is shown once; hovering a step shows every gate and state there, clicking pins it (arrow keys
move it); a unit (picked by number, from the list, or by clicking its cell in a strip) colours the text
by its activation; the steps where that unit is most active are listed.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path

import numpy as np

from lstmkit.files import write_atomic
from lstmkit.plots.record import MEANINGS, QUANTITIES, GateRecord, varying_units

DECIMALS = 4  # values in the page; the viewer shows them with this many decimals
SCRIPT = "viewer.js"  # the page's script and style, inlined from the package
STYLE = "viewer.css"


HELP = """
<details>
<summary>How to read this page</summary>
<p>An LSTM reads its input one step at a time (here one {kind} per step) and keeps two vectors of
{size} numbers per layer, one number per <em>unit</em>: the <b>cell state c</b> (long-term memory) and
the <b>hidden state h</b> (its output). At each step, three gates between 0 and 1 decide what happens
to each unit's memory:</p>
<ul>
<li><b>forget gate f</b>: how much of the old cell value is kept (1 keep, 0 erase);</li>
<li><b>input gate i</b>: how much of the <b>candidate g</b> (new information, from -1 to 1) is written:
<code>c = f * c_prev + i * g</code>;</li>
<li><b>output gate o</b>: how much of the memory is let out: <code>h = o * tanh(c)</code>.</li>
</ul>
<p><b>Hover</b> over a {kind} to see every gate and state at that step: for the chosen unit, the mean
over all units, and a strip with one cell per unit (click a cell to choose that unit). <b>Click</b> a
{kind} to pin it; then the arrow keys move along the text. <b>Choose a unit</b> (by number, or from the
list of units whose gates vary most) to colour the text by its value: white is 0; for gates, deeper
blue is more open; for c, h and g, red is positive and blue negative.</p>
</details>
"""


def page_data(record: GateRecord, unit: int, quantity: str, step: int | None, row: int) -> dict:
    """What the page's script reads: the record's fields, values rounded to DECIMALS."""
    return {
        "title": record.title,
        "tokens": record.tokens,
        "token_kind": record.token_kind,
        "notes": record.notes,
        "unknown": record.unknown,
        "rows": record.rows,
        "hidden_size": record.hidden_size,
        "quantities": QUANTITIES,
        "meanings": MEANINGS,
        "values": {
            name: np.round(v.astype(np.float64), DECIMALS).tolist() for name, v in record.values.items()
        },
        "decimals": DECIMALS,
        "units_by_spread": [varying_units(record, r, record.hidden_size) for r in range(len(record.rows))],
        "start_unit": unit,
        "start_quantity": quantity,
        "start_step": step,
        "start_row": row,
    }


def render_html(
    record: GateRecord,
    unit: int | None = None,
    quantity: str = "forget_gate",
    step: int | None = None,
    row: int = 0,
) -> str:
    """The page, as a string. It opens on trace row ROW and UNIT (default: the one whose gates vary
    most), colouring the text by QUANTITY, with STEP pinned (default: none, step 1 shown)."""
    if unit is None:
        unit = varying_units(record, row, 1)[0]
    data = json.dumps(page_data(record, unit, quantity, step, row), ensure_ascii=False, separators=(",", ":"))
    data = data.replace("</", "<\\/")  # the JSON cannot end its <script> element early
    files = resources.files("lstmkit") / "plots"
    style, script = ((files / name).read_text(encoding="utf-8") for name in (STYLE, SCRIPT))
    title = html.escape(record.title)
    kind = html.escape(record.token_kind)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lstmkit gates: {title}</title>
<style>{style}</style>
</head>
<body>
<h1>lstmkit gate viewer</h1>
<div>{title}</div>
<p class="summary">{html.escape(record.summary)}</p>
{HELP.format(kind=kind, size=record.hidden_size)}
<div class="controls">
  <label>Layer <select id="row"></select></label>
  <label>Colour the text by <select id="quantity"></select></label>
  <label>Unit <button id="unit-prev" title="previous unit">&#9664;</button><input id="unit" type="number"
    min="0"><button id="unit-next" title="next unit">&#9654;</button></label>
  <span id="legend"><span id="legend-low"></span><span id="legend-bar"></span>
    <span id="legend-high"></span></span>
</div>
<div id="text"></div>
<div class="grid">
  <section class="panel">
    <h2 id="step-title">Hover over a {kind} to see its gates</h2>
    <p id="step-note"></p>
    <table id="step-table">
      <tr><th></th><th>unit <span id="unit-name"></span></th><th>mean, all units</th><th>every unit</th></tr>
    </table>
  </section>
  <section class="panel">
    <h2 id="top-title"></h2>
    <label class="muted"><input type="checkbox" id="lowest"> lowest values instead</label>
    <ol id="top-list"></ol>
    <h2>Units of this layer, most varying gates first</h2>
    <div id="unit-list"></div>
  </section>
</div>
<script type="application/json" id="lstmkit-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""


def write_html(record: GateRecord, path: Path, **start) -> None:
    """Write the viewer for RECORD to PATH (one file, nothing fetched from anywhere); START: as
    ``render_html``'s unit, quantity, step and row."""
    write_atomic(path, render_html(record, **start))
