"use strict";
const D = JSON.parse(document.getElementById("lstmkit-data").textContent);
const NAMES = Object.keys(D.quantities);
const S = { row: D.start_row, unit: D.start_unit, quantity: D.start_quantity, step: null, pinned: null, lowest: false };
const $ = (id) => document.getElementById(id);
const fmt = (v) => (v >= 0 ? "\u2007" : "") + v.toFixed(D.decimals);
const visible = { " ": "\u2423", "\n": "\u21b5", "\t": "\u21e5", "\r": "\\r" };

function series(name, row, unit) { return D.values[name][row].map((stepValues) => stepValues[unit]); }
function signed(name) { return !["input_gate", "forget_gate", "output_gate"].includes(name); }
function bound(name, values) {  // the colour scale's end: 1 for gates, candidate and h; max |c| for c
  if (name !== "cell") return 1;
  return Math.max(1e-6, ...values.map(Math.abs));
}
function colour(name, value, end) {  // [r, g, b]: gates white -> blue; signed blue <- white -> red
  const mix = (a, b, t) => a.map((x, k) => Math.round(x + (b[k] - x) * t));
  const white = [255, 255, 255];
  if (!signed(name)) return mix(white, [8, 69, 148], Math.min(1, Math.max(0, value)));
  const t = Math.max(-1, Math.min(1, value / end));
  return t >= 0 ? mix(white, [178, 24, 43], t) : mix(white, [33, 102, 172], -t);
}
const css = (rgb) => `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
const dark = (rgb) => 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 140;

function buildText() {
  const box = $("text");
  box.className = D.token_kind;
  D.tokens.forEach((token, i) => {
    const span = document.createElement("span");
    span.className = "tok" + (D.unknown.includes(i) ? " unknown" : "");
    span.dataset.step = i;
    span.textContent = D.token_kind === "character" && token in visible && token !== " " ? visible[token] : token;
    if (D.unknown.includes(i)) span.title = `the model does not know this ${D.token_kind}`;
    box.appendChild(span);
    if (token === "\n") box.appendChild(document.createElement("br"));
    else if (D.token_kind !== "character") box.appendChild(document.createTextNode(" "));
  });
  box.addEventListener("mouseover", (e) => { if (e.target.dataset.step) showStep(+e.target.dataset.step); });
  box.addEventListener("mouseleave", () => { if (S.pinned !== null) showStep(S.pinned); });
  box.addEventListener("click", (e) => { if (e.target.dataset.step) pin(+e.target.dataset.step); });
}

function paintText() {
  const values = series(S.quantity, S.row, S.unit);
  const end = bound(S.quantity, values);
  document.querySelectorAll("#text .tok").forEach((span) => {
    const rgb = colour(S.quantity, values[+span.dataset.step], end);
    span.style.background = css(rgb);
    span.style.color = dark(rgb) ? "#fff" : "#111";
  });
  const low = signed(S.quantity) ? -end : 0;
  const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => css(colour(S.quantity, low + t * (end - low), end)));
  $("legend-bar").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  $("legend-low").textContent = low.toFixed(2);
  $("legend-high").textContent = end.toFixed(2);
}

function pin(step) {
  S.pinned = S.pinned === step ? null : step;
  document.querySelectorAll("#text .tok.current").forEach((s) => s.classList.remove("current"));
  if (S.pinned !== null) document.querySelector(`#text .tok[data-step="${step}"]`).classList.add("current");
  showStep(step);
}

function showStep(step) {
  S.step = step;
  const token = D.tokens[step];
  $("step-title").textContent =
    `Step ${step + 1} of ${D.tokens.length}: ${D.token_kind} "${visible[token] || token}"` +
    (S.pinned === step ? " (pinned: click again to release, \u2190 \u2192 to move)" : "");
  $("step-note").textContent = D.notes.length ? D.notes[step] : "";
  for (const name of NAMES) {
    const tr = document.querySelector(`#step-table tr[data-quantity="${name}"]`);
    const all = D.values[name][S.row][step];
    tr.querySelector(".unit-value").textContent = fmt(all[S.unit]);
    tr.querySelector(".mean-value").textContent = fmt(all.reduce((a, b) => a + b, 0) / all.length);
    drawStrip(tr.querySelector("canvas"), name, all);
  }
}

function drawStrip(canvas, name, all) {
  const ctx = canvas.getContext("2d");
  const width = canvas.width / all.length;
  const end = bound(name, D.values[name][S.row].flat());
  all.forEach((v, u) => { ctx.fillStyle = css(colour(name, v, end)); ctx.fillRect(u * width, 0, Math.ceil(width), canvas.height); });
  ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
  ctx.strokeRect(S.unit * width + 1, 1, Math.max(width - 2, 2), canvas.height - 2);
}

function showTop() {
  const values = series(S.quantity, S.row, S.unit);
  const order = values.map((v, i) => i).sort((a, b) => (S.lowest ? values[a] - values[b] : values[b] - values[a]));
  const reach = D.token_kind === "character" ? 12 : 4;
  const list = $("top-list");
  list.replaceChildren();
  $("top-title").textContent =
    `Where unit ${S.unit} has its ${S.lowest ? "lowest" : "highest"} ${D.quantities[S.quantity]} (${D.rows[S.row]})`;
  for (const step of order.slice(0, 10)) {
    const li = document.createElement("li");
    li.dataset.step = step;
    const piece = (a, b) => D.tokens.slice(a, b).map((t) => (D.token_kind === "character" ? visible[t] || t : t))
      .join(D.token_kind === "character" ? "" : " ");
    const gap = D.token_kind === "character" ? "" : " ";
    li.append(`${fmt(values[step])}  \u2026${piece(Math.max(0, step - reach), step)}${gap}`);
    const b = document.createElement("b");
    b.textContent = piece(step, step + 1);
    li.append(b, `${gap}${piece(step + 1, step + 1 + reach)}\u2026`);
    li.addEventListener("click", () => { if (S.pinned !== step) pin(step); });
    list.appendChild(li);
  }
}

function buildUnits() {
  const box = $("unit-list");
  box.replaceChildren();
  D.units_by_spread[S.row].forEach((u) => {
    const b = document.createElement("button");
    b.textContent = u;
    b.dataset.unit = u;
    b.className = u === S.unit ? "chosen" : "";
    b.addEventListener("click", () => setUnit(u));
    box.appendChild(b);
  });
}

function setUnit(u) {
  S.unit = Math.max(0, Math.min(D.hidden_size - 1, u | 0));
  $("unit").value = S.unit;
  document.querySelectorAll("#unit-list button").forEach((b) => b.classList.toggle("chosen", +b.dataset.unit === S.unit));
  $("unit-name").textContent = S.unit;
  refresh();
}

function refresh() {
  paintText();
  showTop();
  if (S.step !== null) showStep(S.step);
}

function setUp() {
  D.rows.forEach((name, r) => $("row").add(new Option(name, r)));
  NAMES.forEach((name) => $("quantity").add(new Option(D.quantities[name], name)));
  $("quantity").value = S.quantity;
  $("row").value = S.row;
  $("unit").max = D.hidden_size - 1;
  const table = $("step-table");
  for (const name of NAMES) {
    const tr = table.insertRow();
    tr.dataset.quantity = name;
    tr.innerHTML = `<th>${D.quantities[name]}<span class="meaning">${D.meanings[name]}</span></th>` +
      `<td class="num unit-value"></td><td class="num mean-value"></td><td><canvas class="strip" width="${Math.max(160, Math.min(384, 3 * D.hidden_size))}" height="18"></canvas></td>`;
    tr.querySelector("canvas").addEventListener("click", (e) => {
      const box = e.target.getBoundingClientRect();
      setUnit(Math.floor(((e.clientX - box.left) / box.width) * D.hidden_size));
    });
  }
  $("row").addEventListener("change", (e) => { S.row = +e.target.value; buildUnits(); setUnit(S.unit); });
  $("quantity").addEventListener("change", (e) => { S.quantity = e.target.value; refresh(); });
  $("unit").addEventListener("change", (e) => setUnit(+e.target.value));
  $("unit-prev").addEventListener("click", () => setUnit(S.unit - 1));
  $("unit-next").addEventListener("click", () => setUnit(S.unit + 1));
  $("lowest").addEventListener("change", (e) => { S.lowest = e.target.checked; showTop(); });
  document.addEventListener("keydown", (e) => {
    if (S.pinned === null || !["ArrowLeft", "ArrowRight"].includes(e.key) || e.target.tagName === "INPUT") return;
    const next = Math.max(0, Math.min(D.tokens.length - 1, S.pinned + (e.key === "ArrowLeft" ? -1 : 1)));
    S.pinned = null;
    pin(next);
    e.preventDefault();
  });
  buildText();
  buildUnits();
  setUnit(S.unit);
  if (D.start_step === null) showStep(0);
  else pin(D.start_step);
  document.body.dataset.ready = "1";
}
setUp();
