"""The estimators: fit -> save -> load -> predict gives the same predictions; a model written by the
command line loads in Python and the other way round; bad input is one clear InputError from Python and
one line with exit status 2 from the command line; hyperparameters are checked where they enter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import lstmkit
from lstmkit.cli import main
from lstmkit.data.text import load_bundled_text
from lstmkit.errors import InputError, NotFittedError
from lstmkit.train.checkpoint import CONFIG_FILE, MODEL_FILE

QUICK = {"epochs": 2, "checkpoint_every": 60.0}


def monthly_frame(months: int = 96) -> pd.DataFrame:
    """A seasonal monthly series with growth: the shape of the airline data."""
    t = np.arange(months)
    values = (100 + 2 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12))
    return pd.DataFrame({"Month": pd.date_range("2000-01-01", periods=months, freq="MS"), "sales": values})


def review_texts(count: int = 80) -> tuple[list[str], list[str]]:
    good = ["a gorgeous, witty film", "warm and wonderful", "a delight from start to end", "moving and funny"]
    bad = ["dull and far too long", "a tedious mess", "flat, lifeless acting", "boring from start to end"]
    texts = [(good if k % 2 else bad)[k // 2 % 4] + f" number {k}" for k in range(count)]
    return texts, ["pos" if k % 2 else "neg" for k in range(count)]


def ramps(count: int = 40, length: int = 32) -> tuple[np.ndarray, list[int]]:
    """Rising and falling noisy ramps: an easy two-class series problem."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, length)
    labels = [k % 2 for k in range(count)]
    values = np.stack([(t if label else 1 - t) + rng.normal(0, 0.1, length) for label in labels])
    return values, labels


@pytest.fixture(scope="module")
def forecaster():
    fc = lstmkit.Forecaster(horizon=3, **QUICK)
    return fc.fit(monthly_frame(), target="sales", test_size=24, verbose=False)


def test_forecaster_roundtrip_gives_the_same_forecasts(forecaster, tmp_path):
    frame = monthly_frame()
    before = forecaster.predict(frame)
    assert list(before.columns) == ["step", "ds", "forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert len(before) == 3
    assert before["ds"].tolist() == list(pd.date_range("2008-01-01", periods=3, freq="MS"))
    written = forecaster.save(tmp_path / "fc")
    assert {p.name for p in written} >= {MODEL_FILE, CONFIG_FILE}
    loaded = lstmkit.Forecaster.load(tmp_path / "fc")
    pd.testing.assert_frame_equal(loaded.predict(frame), before)
    pd.testing.assert_frame_equal(lstmkit.load(tmp_path / "fc").predict(frame, horizon=2), before[:2])
    # the same frame as a CSV file gives the same forecasts
    frame.to_csv(tmp_path / "sales.csv", index=False)
    np.testing.assert_allclose(
        loaded.predict(tmp_path / "sales.csv")["forecast"], before["forecast"], rtol=1e-6
    )


def test_forecaster_evaluate_scores_the_test_part_against_naive_forecasts_by_hand(forecaster):
    metrics = forecaster.evaluate()
    frame = monthly_frame()
    values = frame["sales"].to_numpy()
    origins = np.arange(len(values) - 24 - 1, len(values) - 3)  # the test part's forecast origins
    actual = values[origins[:, None] + np.arange(1, 4)]
    naive = np.repeat(values[origins, None], 3, axis=1)
    assert metrics["forecast_origins"] == len(origins) == 22
    assert metrics["baselines"]["naive"]["mae"] == pytest.approx(np.abs(naive - actual).mean())
    # scoring the same rows again from the frame gives the same numbers
    again = forecaster.evaluate(frame, test_size=24)
    assert again["rmse"] == pytest.approx(metrics["rmse"]) and again["forecast_origins"] == 22


def test_forecaster_reads_nixtla_long_format(tmp_path):
    frame = monthly_frame(60).rename(columns={"Month": "ds", "sales": "y"})
    frame.insert(0, "unique_id", "store-1")
    fc = lstmkit.Forecaster(horizon=2, **QUICK).fit(frame, test_size=12, verbose=False)
    assert fc.columns["target"] == "y" and fc.columns["time"] == ["ds"]
    two = pd.concat([frame, frame.assign(unique_id="store-2")])
    with pytest.raises(InputError, match="holds 2 series"):
        lstmkit.Forecaster(horizon=2).fit(two, test_size=12)


def test_cli_model_loads_in_python_and_python_model_in_cli(forecaster, tmp_path, capsys):
    frame = monthly_frame()
    csv = tmp_path / "sales.csv"
    frame.to_csv(csv, index=False)
    argv = ["forecast", "train", str(csv), "--target", "sales", "--horizon", "3", "--test-size", "24"]
    assert main([*argv, "--epochs", "2", "--out", str(tmp_path / "cli")]) == 0
    from_cli = lstmkit.load(tmp_path / "cli")
    metrics = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert from_cli.metrics["rmse"] == pytest.approx(metrics["rmse"])
    # the same settings from Python train the same model: same seed, same forecasts
    same = lstmkit.Forecaster(horizon=3, epochs=2).fit(csv, target="sales", test_size=24, verbose=False)
    pd.testing.assert_frame_equal(same.predict(), from_cli.predict(csv))
    forecaster.save(tmp_path / "py")
    capsys.readouterr()
    assert (
        main(["forecast", "predict", str(tmp_path / "py"), str(csv), "--output", str(tmp_path / "f.csv")])
        == 0
    )
    printed = pd.read_csv(tmp_path / "f.csv")
    np.testing.assert_allclose(printed["sales_forecast"], forecaster.predict(frame)["forecast"], rtol=1e-5)


def test_text_classifier_roundtrip_and_cli(tmp_path, capsys):
    texts, labels = review_texts()
    clf = lstmkit.TextClassifier(members=2, hidden_size=8, embed_size=8, **QUICK).fit(
        texts, labels, verbose=False
    )
    probabilities = clf.predict_proba(texts[:6])
    assert probabilities.shape == (6, 2) and np.allclose(probabilities.sum(axis=1), 1)
    assert clf.predict(texts[:6]) == [clf.class_names[k] for k in probabilities.argmax(axis=1)]
    metrics = clf.evaluate(texts, labels)
    assert metrics["test_size"] == 80 and sum(map(sum, metrics["confusion_matrix"]["counts"])) == 80
    clf.save(tmp_path / "mr")
    loaded = lstmkit.TextClassifier.load(tmp_path / "mr")
    np.testing.assert_array_equal(loaded.predict_proba(texts[:6]), probabilities)
    baseline_keys = {"baselines", "baseline_notes", "winner"}  # fitted with the model, not saved
    without = {k: v for k, v in loaded.evaluate(texts, labels).items() if k not in baseline_keys}
    assert without == {k: v for k, v in metrics.items() if k not in baseline_keys}
    capsys.readouterr()
    assert main(["sentiment", "predict", str(tmp_path / "mr"), texts[0], texts[1]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == clf.predict(texts[:2])
    assert [float(line.split("\t")[1]) for line in lines] == pytest.approx(
        probabilities[:2].max(axis=1), abs=1e-4
    )
    frame = pd.DataFrame({"review": texts, "stars": labels})
    from_frame = lstmkit.TextClassifier(members=2, hidden_size=8, embed_size=8, **QUICK)
    from_frame.fit(frame, verbose=False)  # the text and label columns detected, as in a file
    np.testing.assert_array_equal(from_frame.predict_proba(texts[:6]), probabilities)


def test_series_classifier_learns_ramps_and_roundtrips(tmp_path):
    values, labels = ramps()
    clf = lstmkit.SeriesClassifier(members=1, epochs=30).fit(values[:30], labels[:30], verbose=False)
    metrics = clf.evaluate(values[30:], labels[30:])
    assert metrics["accuracy"] == 1.0  # rising against falling: no LSTM should miss
    assert clf.class_names == ["0", "1"] and clf.predict(values[30:32]) == ["0", "1"]
    clf.save(tmp_path / "ramps")
    loaded = lstmkit.load(tmp_path / "ramps")
    np.testing.assert_array_equal(loaded.predict_proba(values), clf.predict_proba(values))
    with pytest.raises(InputError, match="series of 20 values; the model reads 32"):
        loaded.predict(values[:, :20])


def test_char_lm_roundtrip_samples_and_scores_the_same(tmp_path):
    text = load_bundled_text()[:20_000]
    lm = lstmkit.CharLM(hidden_size=16, num_layers=1, embed_size=8, seq_len=16, batch_size=4, epochs=1)
    lm.fit(text, verbose=False)
    scores = lm.evaluate()
    assert scores["val_chars"] == 2000 and scores["val_loss"] < np.log(len(lm.vocab))  # learned something
    lm.save(tmp_path / "lm")
    loaded = lstmkit.CharLM.load(tmp_path / "lm")
    assert loaded.sample("ROMEO:", 40, 0.8, seed=3) == lm.sample("ROMEO:", 40, 0.8, seed=3)
    np.testing.assert_allclose(loaded.predict("To be"), lm.predict("To be"), rtol=1e-6)
    assert loaded.evaluate(text[-2000:])["loss"] == pytest.approx(lm.evaluate(text[-2000:])["loss"])
    record = loaded.gates("To be")
    assert record.tokens == list("To be") and record.values["forget_gate"].shape == (1, 5, 16)


def test_hyperparameters_are_checked_in_python_as_on_the_command_line():
    with pytest.raises(ValueError, match="hidden_size must be a whole number >= 1, got 0"):
        lstmkit.Forecaster(horizon=2, hidden_size=0)
    with pytest.raises(ValueError, match="dropout must be a number from 0 to below 1"):
        lstmkit.CharLM(dropout=1.0)
    with pytest.raises(ValueError, match="pooling must be one of last, max, mean"):
        lstmkit.TextClassifier(pooling="median")
    with pytest.raises(TypeError, match="did you mean 'hidden_size'"):
        lstmkit.SeriesClassifier(hiden_size=3)
    with pytest.raises(TypeError, match="horizon"):
        lstmkit.Forecaster()  # the one hyperparameter without a default
    fc = lstmkit.Forecaster(horizon=12, hidden_size=64)
    assert repr(fc) == "Forecaster(horizon=12, hidden_size=64)"
    assert fc.get_params()["hidden_size"] == 64 and fc.set_params(lr=0.01).config.lr == 0.01
    with pytest.raises(NotFittedError, match="not fitted yet"):
        fc.predict()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: lstmkit.Forecaster(horizon=1).fit(monthly_frame(), target="nope"), "no column 'nope'"),
        (
            lambda: lstmkit.Forecaster(horizon=5).fit(monthly_frame(), target="sales", test_size=3),
            "longer than",
        ),
        (lambda: lstmkit.TextClassifier().fit(["a", "b"], ["x", "x"]), "only the class 'x'"),
        (lambda: lstmkit.TextClassifier().fit(["a", "b"], ["x"]), "2 texts need as many labels"),
        (lambda: lstmkit.SeriesClassifier().fit(np.ones((4, 8)), [0, 1, 0, 1]), "--window 16 is longer"),
        (
            lambda: lstmkit.SeriesClassifier(window=4).fit([[1, np.nan, 2, 3, 4]], [0]),
            "step 2 is not a finite number",
        ),
        (lambda: lstmkit.CharLM().fit("too short"), "characters are too few"),
        (lambda: lstmkit.CharLM().fit("corpus.txt"), "corpus.txt: no such file"),
        (lambda: lstmkit.load("nowhere"), "nowhere: no such directory"),
    ],
)
def test_bad_input_from_python_is_one_clear_input_error(call, message):
    with pytest.raises(InputError, match=message) as error:
        call()
    assert len(str(error.value).splitlines()) == 1


def test_frames_bad_values_name_the_row(tmp_path):
    frame = monthly_frame(40).astype({"sales": object})
    frame.loc[7, "sales"] = "n/a?"
    with pytest.raises(InputError, match=r"DataFrame, row 8, column 'sales': 'n/a\?' is not a number"):
        lstmkit.Forecaster(horizon=1).fit(frame, target="sales")


def test_a_directory_of_another_layout_or_task_is_refused_in_one_line(forecaster, tmp_path):
    forecaster.save(tmp_path / "fc")
    config = json.loads((tmp_path / "fc" / CONFIG_FILE).read_text())
    with pytest.raises(InputError, match="holds a 'forecast' model, not a 'charlm' one"):
        lstmkit.CharLM.load(tmp_path / "fc")
    del config["layout"]  # as an older lstmkit wrote it
    (tmp_path / "fc" / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(InputError, match="in another layout; train the model again"):
        lstmkit.load(tmp_path / "fc")
