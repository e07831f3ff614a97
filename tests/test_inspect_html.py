"""The HTML gate viewer in headless Chromium, driven over the DevTools protocol: hover a step, read the
values the page shows, compare them with the model's trace; pick units and layers; nothing fetched."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import untrained

import lstmkit
from lstmkit.data.text import CharVocab
from lstmkit.plots.html import write_html
from lstmkit.plots.record import QUANTITIES, GateRecord
from lstmkit.tasks.inspect import inspect_model

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"
)
TEXT = "Bob is a nice person.\nDan, on the other hand, is evil."
SHOWN = 1e-4 / 2 + 1e-7  # the page shows 4 decimals


class Browser:
    """Headless Chromium on a pipe (--remote-debugging-pipe: commands on its fd 3, replies on fd 4, each
    a JSON message ended by a NUL byte): no websocket library, no network port."""

    def __init__(self, profile: Path):
        to_browser, self.writer = os.pipe()
        self.reader, from_browser = os.pipe()

        def wire():  # in the child, before exec: the pipe ends become fds 3 and 4
            high_in, high_out = os.dup(to_browser), os.dup(from_browser)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
        flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
        flags += ["--disable-quic", "--remote-debugging-pipe", f"--user-data-dir={profile}"]
        self.process = subprocess.Popen(
            [str(CHROMIUM), *flags, "about:blank"],
            preexec_fn=wire,
            close_fds=False,  # fds 3 and 4 must survive; Python's own fds are close-on-exec anyway
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self.buffer, self.next_id, self.events, self.session = b"", 0, [], None

    def _message(self) -> dict:
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.reader], [], [], 30)
            chunk = os.read(self.reader, 1 << 20) if ready else b""
            if not chunk:
                raise RuntimeError("chromium did not answer within 30 s")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self.writer, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") != self.next_id:
                self.events.append(reply)
            elif "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            else:
                return reply["result"]

    def open(self, path: Path) -> None:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Network", "Page"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride", width=1300, height=1000, deviceScaleFactor=1, mobile=False
        )
        self.send("Page.navigate", url=path.resolve().as_uri())
        for _ in range(200):
            if self.eval("document.body && document.body.dataset.ready") == "1":
                return
            self.send("Runtime.evaluate", expression="new Promise(r => setTimeout(r, 25))", awaitPromise=True)
        raise RuntimeError("the page never became ready")

    def eval(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def mouse(self, selector: str, click: bool = False, fraction: float = 0.5) -> None:
        """Move the real mouse onto SELECTOR's element (at FRACTION of its width), and click it."""
        x, y = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
            " const r = e.getBoundingClientRect();"
            f" return [r.left + {fraction} * r.width, r.top + r.height / 2]; }})()"
        )
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        if click:
            for kind in ("mousePressed", "mouseReleased"):
                self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def shown(self) -> dict[str, float]:
        """The chosen unit's value of every quantity in the step table."""
        return {
            name: float(
                self.eval(f"document.querySelector('tr[data-quantity={name}] .unit-value').textContent")
            )
            for name in QUANTITIES
        }

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self.writer)
        os.close(self.reader)


@pytest.fixture
def record(tmp_path) -> GateRecord:
    torch.manual_seed(0)
    vocab = CharVocab.from_text(TEXT)
    lm = lstmkit.CharLM(embed_size=6, hidden_size=12, num_layers=2, dropout=0.0)
    untrained(lm, {"chars": vocab.chars[1:]}).save(tmp_path / "lm")
    return inspect_model(tmp_path / "lm", TEXT)


@pytest.fixture
def browser(tmp_path):
    browser = Browser(tmp_path / "profile")
    yield browser
    browser.close()


def test_hovering_a_character_shows_its_gate_values(record, browser, tmp_path):
    page = tmp_path / "gates.html"
    write_html(record, page, unit=5)
    browser.open(page)
    assert browser.eval("document.querySelectorAll('#text .tok').length") == len(TEXT)
    for step in (0, TEXT.index("."), TEXT.index("\n"), len(TEXT) - 1):
        browser.mouse(f'#text .tok[data-step="{step}"]')
        assert browser.eval("document.getElementById('step-title').textContent").startswith(
            f"Step {step + 1} of"
        )
        for name, value in browser.shown().items():
            assert abs(value - record.values[name][0][step, 5]) <= SHOWN, (step, name)
        mean = float(
            browser.eval("document.querySelector('tr[data-quantity=forget_gate] .mean-value').textContent")
        )
        assert abs(mean - record.values["forget_gate"][0][step].mean()) <= SHOWN

    browser.mouse('#text .tok[data-step="3"]', click=True)  # pinned: moving away keeps step 4 shown
    browser.mouse("h1")
    assert browser.eval("document.getElementById('step-title').textContent").startswith("Step 4 of")
    assert browser.eval("document.querySelector('#text .tok.current').dataset.step") == "3"
    assert not [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]
    requests = [
        e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"
    ]
    assert requests == [page.resolve().as_uri()]  # the page fetches nothing else


def test_picking_a_unit_and_a_layer_recolours_the_text_and_lists_its_top_steps(record, browser, tmp_path):
    page = tmp_path / "gates.html"
    write_html(record, page, unit=0, quantity="cell")
    browser.open(page)
    browser.mouse('#unit-list button[data-unit="9"]', click=True)
    browser.eval(
        "const s = document.getElementById('row'); s.value = '1'; s.dispatchEvent(new Event('change'))"
    )
    assert browser.eval("document.getElementById('unit').value") == "9"
    cell = record.values["cell"][1][:, 9]  # layer 2, unit 9: (T,)
    assert cell.min() < 0 < cell.max()  # both ends of the colour scale are tested
    listed = browser.eval("[...document.querySelectorAll('#top-list li')].map(li => +li.dataset.step)")
    np.testing.assert_allclose(cell[listed], np.sort(cell)[::-1][:10], atol=SHOWN)  # the 10 highest, in order
    shades = browser.eval(
        "[...document.querySelectorAll('#text .tok')].map(s => getComputedStyle(s).backgroundColor)"
    )
    end = np.abs(cell).max()  # the cell's scale runs from -max|c| (blue) through 0 (white) to max|c| (red)
    for value, shade in zip(cell, shades):
        deepest = (178, 24, 43) if value >= 0 else (33, 102, 172)
        expected = [255 + (channel - 255) * abs(value) / end for channel in deepest]
        assert np.abs(np.array(re.findall(r"\d+", shade)[:3], dtype=float) - expected).max() <= 1, (
            value,
            shade,
        )

    browser.mouse(
        "tr[data-quantity=input_gate] canvas", click=True, fraction=(10 + 0.5) / 12
    )  # unit 10's cell
    assert browser.eval("document.getElementById('unit').value") == "10"
    browser.mouse('#text .tok[data-step="9"]')
    for name, value in browser.shown().items():
        assert abs(value - record.values[name][1][9, 10]) <= SHOWN, name
