"""`lstmkit inspect`: for a model of every task, the recorded gates equal a plain numpy LSTM run on the
inputs built by hand; the tokens, the summary, the pictures' contents, the JSON and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import untrained

import lstmkit
from lstmkit.cli import main
from lstmkit.data.series_encoding import Encoding
from lstmkit.data.text import CharVocab
from lstmkit.data.vocab import WordVocab
from lstmkit.plots.record import GATES, QUANTITIES, GateRecord, saturation, shown, varying_units
from lstmkit.tasks.forecast_blend import Intervals
from lstmkit.tasks.inspect import inspect_model

ATOL = 2e-5  # float32 model against the float64 reference


def numpy_lstm(state: dict, layer: int, suffix: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """The textbook LSTM in float64 numpy, from a torch-named state dict: every quantity (T, H)."""
    w_ih, w_hh = (state[f"{name}_l{layer}{suffix}"].double().numpy() for name in ("weight_ih", "weight_hh"))
    bias = (state[f"bias_ih_l{layer}{suffix}"] + state[f"bias_hh_l{layer}{suffix}"]).double().numpy()
    size = w_hh.shape[1]
    h, c = np.zeros(size), np.zeros(size)
    steps = {name: [] for name in QUANTITIES}
    for x_t in x:
        a = w_ih @ x_t + w_hh @ h + bias
        i, f, o = (1 / (1 + np.exp(-a[k * size : (k + 1) * size])) for k in (0, 1, 3))
        g = np.tanh(a[2 * size : 3 * size])
        c = f * c + i * g
        h = o * np.tanh(c)
        for name, value in zip(QUANTITIES, (i, f, g, o, c, h)):
            steps[name].append(value)
    return {name: np.array(values) for name, values in steps.items()}


def reference_rows(state: dict, x: np.ndarray, layers: int, bidirectional: bool) -> list[dict]:
    """The trace rows (layer k forward, then backward) of a stacked LSTM on x (T, I)."""
    rows = []
    for layer in range(layers):
        forward = numpy_lstm(state, layer, "", x)
        rows.append(forward)
        if bidirectional:
            backward = numpy_lstm(state, layer, "_reverse", x[::-1])
            rows.append({name: values[::-1] for name, values in backward.items()})
            x = np.concatenate([forward["hidden"], rows[-1]["hidden"]], axis=1)
        else:
            x = forward["hidden"]
    return rows


def assert_matches(record: GateRecord, expected: list[dict]) -> None:
    assert len(record.rows) == len(expected)
    for row, reference in enumerate(expected):
        for name in QUANTITIES:
            np.testing.assert_allclose(record.values[name][row], reference[name], atol=ATOL, err_msg=name)


def saved(model_dir, estimator, fitted: dict):
    """MODEL_DIR as a 'train' command leaves it (model.safetensors, config.json) for an untrained ESTIMATOR
    with the FITTED state that fit would have learned; returns the directory and the network."""
    untrained(estimator, fitted)
    if isinstance(estimator, lstmkit.Forecaster):
        torch.nn.init.normal_(estimator.network.head.weight)  # a trained head is not zero
    estimator.save(model_dir)
    return model_dir, estimator.network


def lstm_state(model: torch.nn.Module) -> dict:
    return {k.removeprefix("lstm."): v for k, v in model.state_dict().items() if k.startswith("lstm.")}


CLASSIFIER_FACTS = {"train_size": 10, "validation_size": 0, "validation_loss": 0.5}


@pytest.fixture
def charlm_dir(tmp_path):
    torch.manual_seed(0)
    vocab = CharVocab.from_text("Bob is a nice person. Dan, on the other hand")
    lm = lstmkit.CharLM(embed_size=5, hidden_size=6, num_layers=2, dropout=0.0, seq_len=16)
    return (*saved(tmp_path / "lm", lm, {"chars": vocab.chars[1:]}), vocab)


@pytest.fixture
def sentiment_dir(tmp_path):
    torch.manual_seed(1)
    vocab = WordVocab(["a", "nice", "movie", ",", "not", "evil", "."])
    clf = lstmkit.TextClassifier(embed_size=5, hidden_size=4, dropout=0.5, members=1)
    fitted = {"class_names": ["neg", "pos"], "vocab": vocab.words[2:], **CLASSIFIER_FACTS}
    return (*saved(tmp_path / "mr", clf, fitted), vocab)


@pytest.fixture
def classify_dir(tmp_path):
    torch.manual_seed(2)
    clf = lstmkit.SeriesClassifier(hidden_size=5, num_layers=2, dropout=0.0, window=4, stride=2, members=1)
    fitted = {"class_names": ["a", "b", "c"], "length": 10, "label_column": 0, "mean": 0.0, "std": 1.0}
    return saved(tmp_path / "ecg", clf, {**fitted, **CLASSIFIER_FACTS})


@pytest.fixture
def forecast_dir(tmp_path):
    torch.manual_seed(3)
    encoding = Encoding(1, False, False, False, 100.0, 20.0, (), ())
    fitted = {"target": "sales", "time": [], "features": [], "categories": {}, "frequency": "steps"}
    fitted |= {"input_size": 2, "hidden_size": 4, "window": 5, "season": 1, "season_from": "--season"}
    fitted |= {"split": {"n_train": 40, "n_validation": 6}, "steps": 50, "encoding": encoding.to_dict()}
    intervals = Intervals(False, {80: ((-1.0, -2.0), (1.0, 2.0)), 95: ((-2.0, -3.0), (2.0, 3.0))}, 10)
    fitted |= {"blend": {"LSTM": 1.0}, "blend_chosen_on": "validation MAE", "intervals": intervals.to_dict()}
    return saved(tmp_path / "fc", lstmkit.Forecaster(horizon=2), {**fitted, "source": "sales.csv"})


def test_charlm_record_is_the_textbook_lstm_on_the_characters(charlm_dir):
    model_dir, model, vocab = charlm_dir
    text = "Bob is evil. Zed?"  # Z, ? and v are not in the vocabulary
    record = inspect_model(model_dir, text)
    ids = [vocab.char_to_id.get(char, 0) for char in text]
    x = model.embed.weight.detach().double().numpy()[ids]  # (T, E)
    assert_matches(record, reference_rows(lstm_state(model), x, 2, False))
    assert record.tokens == list(text) and record.rows == ["layer 1", "layer 2"]
    assert record.unknown == [i for i, char in enumerate(text) if char not in vocab.char_to_id]

    logits = model.head(torch.from_numpy(record.values["hidden"][1]))  # (T, V), from the recorded h
    loss = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:])).item()
    assert f"{loss:.3f} nats" in record.summary
    best = vocab.chars[int(logits[0].argmax())]
    assert record.notes[0].startswith(f"next: {shown(best)} ")  # the likeliest character after "B"


def test_sentiment_record_reads_words_both_ways(sentiment_dir):
    model_dir, model, vocab = sentiment_dir
    record = inspect_model(model_dir, "A nice movie, not EVIL: Gorgeous.")
    words = ["a", "nice", "movie", ",", "not", "evil", ":", "gorgeous", "."]
    assert record.tokens == words and record.unknown == [6, 7]  # unknown words shown as they are
    ids = [vocab.word_to_id.get(word, 1) for word in words]
    x = model.embed.weight.detach().double().numpy()[ids]
    assert_matches(record, reference_rows(lstm_state(model), x, 1, True))
    assert record.rows == ["layer 1, forward", "layer 1, backward"]
    h = np.concatenate([record.values["hidden"][0][-1], record.values["hidden"][1][0]])  # "last" pooling
    positive = torch.sigmoid(model.head(torch.from_numpy(h).float())).item()
    label, probability = ("pos", positive) if positive >= 0.5 else ("neg", 1 - positive)
    assert record.summary.startswith(f"predicted: class {label}, probability {probability:.2f}")


def test_classify_record_reads_windows_of_the_series(classify_dir, tmp_path):
    model_dir, model = classify_dir
    values = np.array([3.0, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    series_file = tmp_path / "series.txt"
    series_file.write_text(
        "a " + " ".join(map(str, values[::-1])) + "\nb " + " ".join(map(str, values)) + "\n"
    )
    for text, row in ((",".join(map(str, values)), 1), (str(series_file), 2)):
        record = inspect_model(model_dir, text, row)
        scaled = (values - values.mean()) / values.std()
        windows = np.array([scaled[s : s + 4] for s in (0, 2, 4, 6)])  # window 4, stride 2: 4 steps
        assert_matches(record, reference_rows(lstm_state(model), windows, 2, True))
        assert record.tokens == ["1", "9", "6", "3"] and record.series == [1.0, 9.0, 6.0, 3.0]
        assert record.notes[1] == "reads values 3 to 6 of the series"


def test_forecast_record_reads_the_last_window(forecast_dir, tmp_path):
    model_dir, model = forecast_dir
    values = np.array([90.0, 110, 130, 120, 100, 140, 150])
    level = (values - 100.0) / 20.0
    x = np.stack([level, np.diff(level, prepend=level[0])], axis=1)[-5:]  # window 5: (5, 2)
    reference = reference_rows(lstm_state(model), x, 1, False)
    csv_file = tmp_path / "sales.csv"
    csv_file.write_text("sales\n" + "\n".join(map(str, values)) + "\n")
    for text in (",".join(map(str, values)), str(csv_file)):
        record = inspect_model(model_dir, text)
        assert_matches(record, reference)
        assert (
            record.tokens == ["130", "120", "100", "140", "150"] and record.notes[-1] == "step 7: sales 150"
        )
        changes = model.head(torch.from_numpy(reference[0]["hidden"][-1]).float()).tolist()  # scaled (2,)
        expected = [150 + 20.0 * change for change in changes]
        assert (
            record.summary
            == f"forecast of what follows: step 8: {expected[0]:.4g}, step 9: {expected[1]:.4g}"
        )


def test_varying_units_and_saturation_by_hand():
    flat, wobbly, wild = np.full(6, 0.5), np.array([0.4, 0.6] * 3), np.array([0.0, 1.0] * 3)
    gate = np.stack([flat, wild, wobbly], axis=1)  # (T=6, H=3)
    values = {name: gate[None] for name in QUANTITIES}
    record = GateRecord("charlm", "t", list("abcdef"), "character", ["layer 1"], values)
    assert varying_units(record, 0, 2) == [1, 2]
    closed, open_ = saturation(np.array([[0.05, 0.95], [0.5, 0.99], [0.09, 0.2], [0.95, 0.91]]))
    np.testing.assert_allclose(closed, [0.5, 0.0])
    np.testing.assert_allclose(open_, [0.25, 0.75])


def test_heatmap_figure_shows_the_chosen_units_with_the_text_along_the_axis(charlm_dir):
    from lstmkit.plots.gates import HEATMAPS, heatmap_figure
    from lstmkit.plots.plots import plt

    record = inspect_model(charlm_dir[0], "Bob is a nice person.")
    fig = heatmap_figure(record, units=[4, 1])
    panels = [ax for ax in fig.axes if ax.images and ax.get_title(loc="left")]
    assert len(panels) == 2 * len(HEATMAPS)
    for k, ax in enumerate(panels):
        row, name = divmod(k, len(HEATMAPS))
        assert ax.get_title(loc="left").startswith(f"layer {row + 1}: {QUANTITIES[HEATMAPS[name]]}")
        np.testing.assert_array_equal(
            ax.images[0].get_array(), record.values[HEATMAPS[name]][row][:, [4, 1]].T
        )
        assert [t.get_text() for t in ax.get_yticklabels()] == ["unit 4", "unit 1"]
        assert [t.get_text() for t in ax.get_xticklabels()] == [shown(c) for c in "Bob is a nice person."]
    plt.close(fig)


def test_cli_writes_png_html_json_and_prints_json(charlm_dir, tmp_path, capsys):
    model_dir = charlm_dir[0]
    out = tmp_path / "out"
    out.mkdir()
    args = ["inspect", str(model_dir), "Bob is nice.", "--json", "--units", "2,0"]
    assert (
        main([*args, "--out", str(out / "g.png"), "--out", str(out / "g.html"), "--out", str(out / "g.json")])
        == 0
    )
    captured = capsys.readouterr()
    printed = json.loads(captured.out)  # stdout holds only the JSON; what was written is said on stderr
    assert f"wrote {out / 'g.png'}" in captured.err and f"wrote {out / 'g-summary.png'}" in captured.err
    assert json.loads((out / "g.json").read_text()) == printed
    record = inspect_model(model_dir, "Bob is nice.")
    assert printed["tokens"] == list("Bob is nice.") and printed["rows"] == record.rows
    for name in QUANTITIES:
        np.testing.assert_allclose(printed["values"][name], record.values[name], atol=1e-6)
    for png in ("g.png", "g-summary.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "g.html").read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page and " src=" not in page
    assert sorted(p.name for p in out.iterdir()) == ["g-summary.png", "g.html", "g.json", "g.png"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--out", "x.gif"], ["x.gif", ".png"]),
        (["--units", "6", "--json"], ["--units 6", "0 to 5"]),
        ([], ["nothing to write"]),
        (["--out", "missing/x.png"], ["no directory"]),
    ],
)
def test_cli_bad_options_are_one_line_and_exit_2(charlm_dir, tmp_path, capsys, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", str(charlm_dir[0]), "Bob", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and all(word in error for word in words), error


def test_bad_text_for_each_task_is_an_input_error(classify_dir, forecast_dir, tmp_path, capsys):
    cases = [
        (classify_dir[0], "1,2,x", "neither a file nor finite numbers"),
        (classify_dir[0], "1,2,nan", "finite"),
        (forecast_dir[0], "1,2,3", "3 steps are too few: the model reads the last 5"),
        (forecast_dir[0], "   ", "TEXT is empty"),
        (tmp_path / "nowhere", "1", "no such directory"),
    ]
    for model_dir, text, words in cases:
        assert main(["inspect", str(model_dir), text, "--json"]) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and words in error, error


def test_summary_figure_counts_saturated_steps_per_unit(charlm_dir):
    from lstmkit.plots.gates import summary_figure
    from lstmkit.plots.plots import plt

    text = "Bob is a nice person. Dan, on the other hand"
    record = inspect_model(charlm_dir[0], text)
    fig = summary_figure(record)
    dots = [ax for ax in fig.axes if ax.collections]  # the scatter plots, row by row, gate by gate
    assert len(dots) == 2 * len(GATES)
    for k, ax in enumerate(dots):
        gate = record.values[GATES[k % len(GATES)]][k // len(GATES)]  # (T, H)
        by_hand = [
            (sum(v < 0.1 for v in gate[:, u]) / len(text), sum(v > 0.9 for v in gate[:, u]) / len(text))
            for u in range(gate.shape[1])
        ]
        np.testing.assert_allclose(ax.collections[0].get_offsets(), by_hand)
    bars = [ax for ax in fig.axes if ax.patches and not ax.collections]
    assert all(sum(p.get_height() for p in ax.patches[:40]) == len(text) * 6 for ax in bars)
    plt.close(fig)
