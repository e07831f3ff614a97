"""Nothing is lost: a real `lstmkit charlm train` killed with SIGKILL at a random moment leaves a loadable
checkpoint, and --resume continues from it to the very losses and weights of a run never interrupted
(optimizer, cosine schedule, data position, the LSTM state carried between batches, dropout's random
state)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import kill_after_first_checkpoint

from lstmkit.cli import main
from lstmkit.data.text import load_bundled_text
from lstmkit.train.checkpoint import MODEL_FILE, STATE_FILE, load_tensors

# two layers with dropout between them: the random state matters; a budget far off: the schedule follows steps
OPTIONS = ["--hidden-size", "32", "--layers", "2", "--dropout", "0.2", "--embed-size", "8", "--seq-len", "32"]
OPTIONS += ["--batch-size", "8", "--epochs", "8", "--eval-every", "40", "--minutes", "1000", "--seed", "3"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "slice.txt"
    path.write_text(load_bundled_text()[:20_000])  # tinyshakespeare, bundled with the package
    return path


def test_sigkill_then_resume_gives_the_uninterrupted_run(corpus, tmp_path):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    args = ["charlm", "train", str(corpus), *OPTIONS]
    # a random moment after the first checkpoint (they come 0.12 s apart), well before the run's end: the
    # whole run takes about a second on two cores
    stopped_at, delay = kill_after_first_checkpoint(args, killed, max_delay=0.4)
    assert stopped_at > 0, f"killed {delay:.2f} s after the first checkpoint"
    assert not (killed / MODEL_FILE).exists()  # the run had not finished

    (killed / f".{STATE_FILE}.x1y2.tmp").write_bytes(b"half a checkpoint")  # as a kill while writing leaves
    assert main([*args, "--out", str(killed), "--resume"]) == 0
    assert not list(killed.glob(".*.tmp"))  # cleared on resuming
    assert main([*args, "--out", str(straight)]) == 0
    resumed, reference = (load_tensors(d / STATE_FILE) for d in (killed, straight))
    history, expected = resumed[1]["loop"]["history"], reference[1]["loop"]["history"]
    steps = 8 * 71  # a pass: 18,000 training characters, 8 streams of 2,249, windows of 32
    assert history["step"] == expected["step"] == list(range(1, steps + 1)) and stopped_at < steps
    for key in ("train_loss", "lr", "val_loss"):
        torch.testing.assert_close(
            torch.tensor(history[key]), torch.tensor(expected[key]), rtol=1e-5, atol=1e-7
        )
    for name, value in reference[0].items():
        if name.startswith(("model.", "optim.")):
            torch.testing.assert_close(resumed[0][name], value, rtol=1e-5, atol=1e-7)
