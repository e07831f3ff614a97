"""`lstmkit sentiment train` and `predict` end to end on reviews in rt-polarity's format; bad input."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import DATA
from safetensors.torch import load_file

import lstmkit
from lstmkit.cli import main
from lstmkit.data.vocab import WordVocab
from lstmkit.models.classifier import (
    Ensemble,
    SequenceClassifier,
    build_classifier,
)

MEMBERS = lstmkit.TextClassifier().config.members  # the default ensemble

TINY = ["--embed-size", "16", "--hidden-size", "16", "--epochs", "2", "--seed", "3"]


@pytest.fixture(scope="module")
def rt_slice():
    """150 review snippets a class, one a line, cp1252 with its bytes 0x85, 0x96, 0x97 (as rt-polarity)."""
    files = DATA / "reviews" / "reviews.pos", DATA / "reviews" / "reviews.neg"
    assert [path.read_bytes().count(b"\n") for path in files] == [150, 150]  # the sizes the tests count on
    return files


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    return error


def test_train_with_held_out_split_then_predict(rt_slice, tmp_path, capsys):
    pos, neg = rt_slice
    out = tmp_path / "mr"
    args = [
        "sentiment",
        "train",
        "--pos",
        str(pos),
        "--neg",
        str(neg),
        "--encoding",
        "cp1252",
        "--out",
        str(out),
    ]
    assert main(args + TINY) == 0
    assert {"model.safetensors", "config.json", "metrics.json", "loss_curve.png"} <= {
        p.name for p in out.iterdir()
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "sentiment" and 0 <= metrics["accuracy"] <= 1
    assert metrics["test_size"] == 30 and metrics["train_size"] + metrics["validation_size"] == 270
    assert set(metrics["per_class"]) == {"neg", "pos"}
    for scores in metrics["per_class"].values():
        assert all(0 <= scores[key] <= 1 for key in ("precision", "recall", "f1")) and scores["support"] == 15
    counts = metrics["confusion_matrix"]["counts"]
    assert sum(map(sum, counts)) == 30 and [sum(row) for row in counts] == [15, 15]
    assert metrics["accuracy"] == pytest.approx((counts[0][0] + counts[1][1]) / 30)
    capsys.readouterr()

    texts = ["a gorgeous , witty film", "dull and far too long"]
    assert main(["sentiment", "predict", str(out), *texts]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[2] for line in lines] == texts
    for line in lines:
        label, probability, _ = line.split("\t")
        assert label in ("neg", "pos") and 0.5 <= float(probability) <= 1
    # by default an ensemble: its members rebuilt one by one from the saved weights give the probabilities
    config = json.loads((out / "config.json").read_text())
    hyper, fitted = config["hyperparameters"], config["fitted"]
    assert hyper["members"] == MEMBERS > 1
    weights = load_file(out / "model.safetensors")
    vocab = WordVocab(fitted["vocab"])
    sizes = {k: hyper[k] for k in ("embed_size", "hidden_size", "num_layers", "pooling", "dropout")}
    logits = []
    for k in range(MEMBERS):
        member = SequenceClassifier(len(fitted["class_names"]), vocab_size=len(vocab), **sizes).eval()
        prefix = f"members.{k}."
        member.load_state_dict({n[len(prefix) :]: w for n, w in weights.items() if n.startswith(prefix)})
        with torch.no_grad():
            logits.append(
                [
                    member(torch.tensor([vocab.encode(t)]), torch.tensor([len(vocab.encode(t))])).item()
                    for t in texts
                ]
            )
    positive = torch.sigmoid(torch.tensor(logits).mean(dim=0))  # (2,) the mean logit's class-1 probability
    for line, p in zip(lines, positive.tolist()):
        label, probability, _ = line.split("\t")
        assert float(probability) == pytest.approx(
            p if label == fitted["class_names"][1] else 1 - p, abs=1e-4
        )

    listed = tmp_path / "texts.txt"
    listed.write_text("one fine film\n\nanother one\n", encoding="utf-8")
    assert main(["sentiment", "predict", str(out), "--file", str(listed)]) == 0
    assert [line.split("\t")[2] for line in capsys.readouterr().out.strip().splitlines()] == [
        "one fine film",
        "another one",
    ]


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    # each text has a word of its own, so a vocabulary built on all texts would hold all 60 of them
    rows = [f"{'good' if i % 2 else 'bad'} film uniqueword{i},{'pos' if i % 2 else 'neg'}" for i in range(60)]
    table = tmp_path / "reviews.csv"
    table.write_text("text,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["sentiment", "train", str(table), "--out", str(out), *TINY]) == 0
    vocab = json.loads((out / "config.json").read_text())["fitted"]["vocab"]
    metrics = json.loads((out / "metrics.json").read_text())
    unique = [word for word in vocab if word.startswith("uniqueword")]
    assert len(unique) == metrics["train_size"] + metrics["validation_size"] == 60 - metrics["test_size"]
    assert {"good", "bad", "film"} <= set(vocab)


def test_folds_report_the_mean_and_each_fold_and_resume_skips_finished_folds(rt_slice, tmp_path, capsys):
    pos, neg = rt_slice
    out = tmp_path / "cv"
    args = [
        "sentiment",
        "train",
        str(pos),
        str(neg),
        "--encoding",
        "cp1252",
        "--folds",
        "3",
        "--out",
        str(out),
    ]
    assert main(args + TINY + ["--epochs", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["fold_accuracies"]) == 3 and metrics["folds"] == 3
    assert metrics["accuracy"] == pytest.approx(sum(metrics["fold_accuracies"]) / 3)
    counts = metrics["confusion_matrix"]["counts"]
    assert sum(map(sum, counts)) == 300  # every text tested once
    assert metrics["pooled_accuracy"] == pytest.approx((counts[0][0] + counts[1][1]) / 300)
    assert sorted(metrics["per_class"]) == ["neg", "pos"]
    for fold in (1, 2, 3):
        fold_metrics = json.loads((out / f"fold-0{fold}" / "metrics.json").read_text())
        assert fold_metrics["accuracy"] == metrics["fold_accuracies"][fold - 1]
        assert fold_metrics["test_size"] == 100
        assert not list((out / f"fold-0{fold}").glob("member-*"))  # the members' checkpoints are gone
    chosen = out / f"fold-0{metrics['model_from_fold']}"
    assert (out / "model.safetensors").read_bytes() == (chosen / "model.safetensors").read_bytes()
    capsys.readouterr()

    assert main(args + TINY + ["--epochs", "1", "--resume"]) == 0
    assert "training" not in capsys.readouterr().err  # every fold was done: nothing trained again
    again = json.loads((out / "metrics.json").read_text())
    assert again["fold_accuracies"] == metrics["fold_accuracies"]
    assert again["confusion_matrix"] == metrics["confusion_matrix"]


def test_undecodable_file_is_one_line_naming_line_and_encoding(rt_slice, tmp_path, capsys):
    pos, neg = rt_slice
    assert (
        main(["sentiment", "train", "--pos", str(pos), "--neg", str(neg), "--out", str(tmp_path / "x")]) == 2
    )
    error = one_line_error(capsys)
    assert "reviews." in error and "line " in error and "--encoding cp1252" in error
    assert not (tmp_path / "x").exists()  # nothing written before the data is read


@pytest.mark.parametrize(
    "files,extra,message",
    [
        ({"a.csv": None}, [], r"a.csv: no such file"),
        ({"a.csv": b""}, [], r"a.csv: the file is empty"),
        (
            {"a.csv": b"text,label\nnice,pos\nbad,neg\n"},
            ["--text-column", "review"],
            r"no column 'review'.*'text', 'label'",
        ),
        ({"a.csv": b"text,label\nnice,pos\ngood,pos\n"}, [], r"only the class 'pos'"),
        ({"a.csv": b"text,label\nnice,pos\nbad,neg,worse\n"}, [], r"line 3 has 3 fields, line 1 has 2"),
        (
            {"good.txt": b"fine\n", "bad.txt": b"ok\n\xff\n"},
            [],
            r"bad.txt: line 2, byte 1: 0xff is not UTF-8",
        ),
    ],
)
def test_bad_training_input_is_one_line_and_exit_2(tmp_path, capsys, files, extra, message):
    for name, content in files.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    paths = [str(tmp_path / name) for name in files]
    assert main(["sentiment", "train", *paths, "--out", str(tmp_path / "out"), *extra]) == 2
    assert re.search(message, one_line_error(capsys))


def test_predict_with_another_tasks_model_is_one_line_and_exit_2(tmp_path, capsys):
    other = tmp_path / "ecg"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"task": "classify"}))
    assert main(["sentiment", "predict", str(other), "some text"]) == 2
    error = one_line_error(capsys)
    assert "holds a 'classify' model, not a 'sentiment' one" in error


def test_ensemble_logits_are_its_members_mean_and_its_config_rebuilds_it():
    torch.manual_seed(0)
    members = [SequenceClassifier(3, vocab_size=12, embed_size=5, hidden_size=4) for _ in range(3)]
    model = Ensemble.of(members).eval()
    assert build_classifier(model.config).config == model.config == {"members": 3, **members[0].config}
    rebuilt = build_classifier(model.config)
    rebuilt.load_state_dict(model.state_dict())
    inputs, lengths = torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2])
    with torch.no_grad():
        each = [member(inputs, lengths) for member in members]  # 3 x (2, 3), by a second path
        assert torch.allclose(model(inputs, lengths), sum(each) / 3)
        assert torch.equal(rebuilt.eval()(inputs, lengths), model(inputs, lengths))
    with pytest.raises(ValueError, match="2 members or more"):
        Ensemble(1, num_classes=2, input_size=3)


def test_build_classifier_gives_one_network_without_members():
    single = build_classifier({"num_classes": 3, "input_size": 2, "hidden_size": 4, "members": 1})
    assert type(single) is SequenceClassifier and "members" not in single.config
    assert build_classifier(single.config).config == single.config


def test_first_member_is_the_single_run_of_the_same_seed_and_resume_skips_finished_members(
    rt_slice, tmp_path, capsys
):
    pos, neg = rt_slice
    args = ["sentiment", "train", "--pos", str(pos), "--neg", str(neg), "--encoding", "cp1252", *TINY]
    assert main([*args, "--members", "1", "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--members", "2", "--out", str(tmp_path / "two")]) == 0
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    assert set(two) == {f"members.{k}.{name}" for k in (0, 1) for name in one}
    assert all(torch.equal(two[f"members.0.{name}"], weight) for name, weight in one.items())
    assert not torch.equal(two["members.1.head.weight"], one["head.weight"])  # its own seed
    assert (tmp_path / "two" / "member-2" / "checkpoint.safetensors").is_file()
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    capsys.readouterr()

    assert main([*args, "--members", "2", "--out", str(tmp_path / "two"), "--resume"]) == 0
    assert "training" not in capsys.readouterr().err  # both members had finished: nothing trained again
    again = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert again["accuracy"] == metrics["accuracy"]
    assert again["validation_loss"] == pytest.approx(metrics["validation_loss"])


def test_a_tsv_with_literal_quotes_trains_and_the_report_says_how_it_was_read(tmp_path, capsys):
    good = ['"Wow" she said: a warm, fine film', "a warm and fine film", 'the "best" warm film']
    bad = ['"Dull" is the word for it', "a dull and cold film", 'a "so-called" cold film']
    lines = [f"{good[k % 3]} {k}\tpos\n{bad[k % 3]} {k}\tneg\n" for k in range(20)]
    path = tmp_path / "quotes.tsv"
    path.write_text("".join(lines))
    out = tmp_path / "q"
    assert main(["sentiment", "train", str(path), "--out", str(out), "--members", "1", *TINY]) == 0
    printed = capsys.readouterr().out
    assert f"{path}: tab-delimited, read line by line with quotes as text (26 lines" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training_file_read_as"].startswith("tab-delimited, read line by line")
    assert main(["sentiment", "train", str(path), "--out", str(tmp_path / "c"), "--quoting", "csv"]) == 2
    assert "--quoting none" in one_line_error(capsys)
