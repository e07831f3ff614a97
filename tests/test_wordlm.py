"""The word language model: PTB's tokens and vocabulary, perplexity by hand, weight tying, embedding and
locked dropout against their equations, and `lstmkit wordlm train|eval|sample` end to end with bad input."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import kill_after_first_checkpoint

import lstmkit
from lstmkit.cli import main
from lstmkit.data import text as text_module
from lstmkit.data.text import load_bundled_text
from lstmkit.data.words import WordVocabulary, line_tokens, read_word_corpus, text_tokens
from lstmkit.errors import InputError
from lstmkit.models.wordlm import WordNetwork
from lstmkit.tasks.wordlm import WordLM, mean_nll
from lstmkit.train.checkpoint import STATE_FILE, load_tensors

SMALL = ["--hidden-size", "24", "--embed-size", "16", "--bptt", "10", "--batch-size", "4", "--seed", "1"]


def exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def ptb_style(text: str) -> str:
    """TEXT as Mikolov's PTB files have it: lower case, one sentence per line with a leading space,
    punctuation split off, numbers as N, words seen fewer than 3 times as <unk>."""
    words = re.findall(r"\w+(?:'\w+)*|[^\w\s]", text.lower())
    counts = Counter(words)
    lines, line = [], []
    for word in words:
        line.append("N" if word.isdigit() else word if counts[word] >= 3 else "<unk>")
        if word in ".?!":
            lines.append(" " + " ".join(line) + " ")
            line = []
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    lines = ptb_style(load_bundled_text()[:60_000]).splitlines(keepends=True)
    folder = tmp_path_factory.mktemp("ptb")
    parts = {"train": lines[:-200], "valid": lines[-200:-100], "test": lines[-100:]}
    paths = {}
    for name, part in parts.items():
        paths[name] = folder / f"{name}.txt"
        paths[name].write_text("".join(part))
    return paths


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "model"
    argv = ["wordlm", "train", str(corpus["train"]), "--valid", str(corpus["valid"]), "--test"]
    argv += [str(corpus["test"]), "--out", str(out), *SMALL, "--epochs", "3", "--decay-after", "2"]
    assert main(argv) == 0
    return out


# ---- tokens and vocabulary ---------------------------------------------------------------------------------
def test_ptb_lines_become_their_tokens_and_an_eos():
    assert line_tokens(" the N <unk> fell N % \n") == ["the", "N", "<unk>", "fell", "N", "%", "<eos>"]
    assert line_tokens("") == ["<eos>"]  # an empty line still ends a sentence
    assert line_tokens("Don't stop, Bob.", "words") == ["Don't", "stop", ",", "Bob", ".", "<eos>"]
    assert text_tokens("a b\nc", end=False) == ["a", "b", "<eos>", "c"]  # a prompt continues its line
    assert text_tokens("a b\n", end=False) == ["a", "b", "<eos>"]


def test_the_vocabulary_keeps_the_most_frequent_words_and_reads_the_corpus_unk_as_its_own(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(" a b a <unk> c \n b a N \n N d\n")
    vocab, ids = read_word_corpus(path, max_vocab=5)
    # a 3, b 2, N 2, c 1, d 1: ties in code point order ("N" < "b"), capped at 5 with <unk> and <eos>
    assert vocab.words == ["<unk>", "<eos>", "a", "N", "b"]
    expected = ["a", "b", "a", "<unk>", "<unk>", "<eos>", "b", "a", "N", "<eos>", "N", "<unk>", "<eos>"]
    assert ids.tolist() == [vocab.word_to_id[w] for w in expected]
    assert ids.dtype == torch.uint16
    assert vocab.decode(ids[:6]) == "a b a <unk> <unk>\n"


def test_reading_in_chunks_that_split_lines_and_characters_gives_the_ids_of_the_whole_text(
    tmp_path, monkeypatch
):
    path = tmp_path / "t.txt"
    text = "".join(f" wörd{i % 7} zebra{i % 3} é \n" for i in range(300))
    path.write_text(text, encoding="utf-8")
    whole_vocab = WordVocabulary.from_counts(Counter(text_tokens(text)), 100)
    monkeypatch.setattr(text_module, "CHUNK_BYTES", 7)  # splits lines, and the two bytes of ö and é
    vocab, ids = read_word_corpus(path)
    assert vocab.words == whole_vocab.words
    assert ids.tolist() == whole_vocab.ids(text_tokens(text))


# ---- the network against its equations --------------------------------------------------------------------
def test_perplexity_is_the_exponent_of_the_mean_nll_computed_word_by_word():
    torch.manual_seed(0)
    network = WordNetwork(30, 8, 12, 2).eval()
    ids = torch.randint(0, 30, (450,))  # three windows of the scorer, the last one short
    total, state = 0.0, None
    with torch.no_grad():
        for t in range(len(ids) - 1):  # one word at a time, the state carried
            hidden, state = network(ids[t].view(1, 1), state)
            logits = network.head(hidden[0, 0])  # (V,)
            total -= (logits - torch.logsumexp(logits, 0))[ids[t + 1]].item()
    by_hand = math.exp(total / (len(ids) - 1))
    assert math.exp(mean_nll(network, ids)) == pytest.approx(by_hand, rel=1e-5)


def test_tied_weights_are_one_matrix_whose_gradient_sums_the_embedding_and_the_softmax():
    torch.manual_seed(0)
    tied = WordNetwork(40, 8, 8, 2, tie_weights=True).train()
    assert tied.head.weight is tied.embed.weight
    untied = WordNetwork(40, 8, 8, 2, tie_weights=False).train()
    untied.load_state_dict(tied.state_dict())
    tokens, targets = torch.randint(0, 40, (3, 7)), torch.randint(0, 40, (3, 7))
    for network in (tied, untied):
        network.nll(network(tokens)[0], targets).backward()
    torch.testing.assert_close(tied.embed.weight.grad, untied.embed.weight.grad + untied.head.weight.grad)


def test_tied_weights_of_two_sizes_project_the_last_layer_to_the_embedding():
    torch.manual_seed(0)
    tied = WordNetwork(40, 8, 12, 2, tie_weights=True).eval()
    assert [lstm.proj_size for lstm in tied.layers] == [0, 8]  # 12 units -> 8
    hidden = tied(torch.randint(0, 40, (3, 7)))[0]  # (3, 7, 8)
    expected = F.log_softmax(hidden @ tied.embed.weight.T + tied.head.bias, -1)  # logits E h + b
    torch.testing.assert_close(tied.log_probs(hidden), expected)
    with pytest.raises(ValueError, match="embed_size <= hidden_size"):
        WordNetwork(40, 16, 12, 2, tie_weights=True)
    with pytest.raises(ValueError, match="full softmax"):
        WordNetwork(40, 8, 12, 2, tie_weights=True, softmax="adaptive")


def test_embedding_dropout_zeroes_whole_words_and_scales_the_rest():
    torch.manual_seed(0)
    network = WordNetwork(500, 6, 8, 1, embed_dropout=0.4).train()
    dropped = network._embedding()  # (V, D)
    ratio = dropped / network.embed.weight
    kept = ratio[:, 0] != 0
    torch.testing.assert_close(ratio[kept], torch.full_like(ratio[kept], 1 / 0.6), rtol=1e-4, atol=0)
    assert bool((ratio[~kept] == 0).all()) and 0.3 < 1 - kept.float().mean() < 0.5  # a row is all or nothing
    network.eval()
    assert network._embedding() is network.embed.weight


@pytest.mark.parametrize("locked", [False, True])
def test_locked_dropout_keeps_one_mask_along_the_sequence(locked):
    torch.manual_seed(0)
    network = WordNetwork(20, 6, 8, 1, dropout=0.5, locked=locked).train()
    x = torch.rand(4, 30, 8) + 0.5
    mask = network._drop(x, 0.5) / x  # (B, T, D): 0 or 2
    assert set(mask.unique().tolist()) == {0.0, 2.0}
    same_along_time = bool((mask == mask[:, :1]).all())
    assert same_along_time == locked


def test_the_adaptive_softmax_is_a_distribution_and_its_nll_is_the_gathered_log_probability():
    torch.manual_seed(0)
    network = WordNetwork(3000, 8, 12, 1, softmax="adaptive").eval()
    hidden = network(torch.randint(0, 3000, (2, 5)))[0]
    log_probs = network.log_probs(hidden)  # (2, 5, V)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 5))
    targets = torch.randint(0, 3000, (2, 5))
    by_hand = -log_probs.gather(-1, targets[..., None]).sum()
    torch.testing.assert_close(network.nll(hidden, targets, reduction="sum"), by_hand)


# ---- the task ----------------------------------------------------------------------------------------------
def test_train_writes_validation_and_test_perplexity_and_eval_agrees(trained, corpus, capsys):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["val_perplexity"] == pytest.approx(math.exp(metrics["val_loss"]))
    assert 1 < metrics["test_perplexity"] < metrics["vocabulary"] / 4  # learnt more than word counts
    assert metrics["training"]["config"]["optimizer"] == "sgd"
    capsys.readouterr()
    assert main(["wordlm", "eval", str(trained), str(corpus["test"]), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["perplexity"] == pytest.approx(metrics["test_perplexity"], rel=1e-6)
    loaded = lstmkit.load(trained)
    assert isinstance(loaded, WordLM) and loaded.vocab.words[:2] == ["<unk>", "<eos>"]


def test_the_decay_schedule_halves_the_rate_each_epoch_after_the_first(trained):
    record = json.loads((trained / "config.json").read_text())
    _, meta = load_tensors(trained / STATE_FILE)
    rates, steps = meta["loop"]["history"]["lr"], meta["loop"]["history"]["step"]
    per_epoch = len(steps) // 3
    lr = record["hyperparameters"]["lr"]
    assert set(rates[:per_epoch]) == {lr} and set(rates[per_epoch : 2 * per_epoch]) == {lr}
    assert set(rates[2 * per_epoch :]) == {lr / 2}  # epoch 3, after --decay-after 2


def test_sample_continues_the_prompt_and_refuses_a_prompt_of_unknown_words(trained, capsys):
    assert (
        main(["wordlm", "sample", str(trained), "--prompt", "the king", "--length", "12", "--top-k", "5"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("the king ") and len(out.split()) >= 12
    lm = WordLM.load(trained)
    assert lm.sample("the king", 12, 0.0) == lm.sample("the king", 12, 0.0, seed=5)  # greedy: no randomness
    assert exit_status(["wordlm", "sample", str(trained), "--prompt", "zzqx wqxz"]) == 2
    assert "every word of the prompt" in capsys.readouterr().err


def test_gates_read_one_step_per_word_with_the_next_word_guesses(trained):
    lm = WordLM.load(trained)
    record = lm.gates("the king is dead zzqx .")
    assert record.tokens == ["the", "king", "is", "dead", "zzqx", "."]
    assert record.unknown == [i for i, t in enumerate(record.tokens) if t not in lm.vocab.word_to_id]
    assert 4 in record.unknown and 0 not in record.unknown
    assert record.values["forget_gate"].shape == (2, 6, 24)
    assert record.notes[0].startswith("next: ")


def test_bad_input_is_one_line_and_status_2(tmp_path, corpus, capsys):
    empty, latin = tmp_path / "empty.txt", tmp_path / "latin.txt"
    empty.write_text("")
    latin.write_bytes(" the caf\xe9 \n".encode("latin-1"))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n  \n")
    cases = {
        empty: "the file is empty",
        latin: "not UTF-8 text (byte 0xe9 at offset 8) on line 1",
        blank: "no words",
    }
    for path, message in cases.items():
        assert exit_status(["wordlm", "train", str(path), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_a_vocabulary_larger_than_memory_is_refused_before_anything_is_allocated(
    corpus, tmp_path, monkeypatch, capsys
):
    from lstmkit.tasks import wordlm

    monkeypatch.setattr(wordlm, "memory_available", lambda: 100 << 10)  # 100 KiB free
    assert exit_status(["wordlm", "train", str(corpus["train"]), "--out", str(tmp_path / "o"), *SMALL]) == 2
    assert "lower --max-vocab" in capsys.readouterr().err


def test_fit_from_python_with_the_last_tenth_for_validation(corpus):
    lm = WordLM(hidden_size=16, embed_size=8, seq_len=10, batch_size=4, epochs=1, softmax="adaptive")
    lm.fit(corpus["train"], verbose=False)
    n = len(read_word_corpus(corpus["train"])[1])
    assert len(lm.val_ids) == n - int(n * 0.9) and len(lm.train_ids) + len(lm.val_ids) == n
    with pytest.raises(InputError, match="too few"):
        WordLM(batch_size=4000).fit(corpus["valid"], verbose=False)


def test_sigkill_then_resume_gives_the_uninterrupted_run(corpus, tmp_path):
    """Killed at a random moment after its first checkpoint, --resume reaches the same losses and weights
    (the carried state of every layer, dropout's random state and the running average included)."""
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    args = ["wordlm", "train", str(corpus["train"]), "--valid", str(corpus["valid"]), *SMALL, "--epochs", "6"]
    args += ["--dropout", "0.2", "--locked-dropout", "--weight-drop", "0.3", "--average-after", "3"]
    stopped_at, _ = kill_after_first_checkpoint(args, killed, max_delay=0.5)  # the run takes seconds more
    assert main([*args, "--out", str(killed), "--resume"]) == 0
    assert main([*args, "--out", str(straight)]) == 0
    resumed, reference = (load_tensors(d / STATE_FILE) for d in (killed, straight))
    history, expected = resumed[1]["loop"]["history"], reference[1]["loop"]["history"]
    assert history["step"] == expected["step"] and 0 < stopped_at < len(expected["step"])
    for key in ("train_loss", "lr", "val_loss"):
        torch.testing.assert_close(
            torch.tensor(history[key]), torch.tensor(expected[key]), rtol=1e-5, atol=1e-7
        )
    for name, value in reference[0].items():
        if name.startswith(("model.", "average.")):
            torch.testing.assert_close(resumed[0][name], value, rtol=1e-5, atol=1e-7)
