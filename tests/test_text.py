"""Character vocabulary, UTF-8 reading, the train/validation split and the truncated-BPTT batcher."""

import pytest
import torch
from conftest import DATA

from lstmkit.data.text import BPTTBatcher, CharVocab, load_bundled_text, read_text, split_train_val
from lstmkit.errors import InputError


def test_vocab_round_trip_and_unknown_characters():
    text = "Héllo, wörld!\nTo be — or not 🐍"
    vocab = CharVocab.from_text(text)
    assert len(vocab) == len(set(text)) + 1  # + the unknown-character id
    assert vocab.decode(vocab.encode(text)) == text
    assert CharVocab(vocab.chars[1:]).encode(text).tolist() == vocab.encode(text).tolist()

    ids = vocab.encode("Hz!")  # 'z' never appeared
    assert ids[1].item() == 0 and ids[0].item() != 0 and ids[2].item() != 0
    assert vocab.decode(ids) == f"H{CharVocab.UNKNOWN}!"


def test_batcher_rows_are_contiguous_streams_continued_by_the_next_batch():
    text = load_bundled_text()[:5000]
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    batch_size, seq_len = 4, 30
    stream_len = (len(ids) - 1) // batch_size
    batches = list(BPTTBatcher(ids, batch_size, seq_len))
    assert len(batches) == len(BPTTBatcher(ids, batch_size, seq_len)) == -(-stream_len // seq_len)

    for row in range(batch_size):
        start = row * stream_len
        stream = torch.cat([inputs[row] for inputs, _ in batches])
        targets = torch.cat([targets[row] for _, targets in batches])
        assert vocab.decode(stream) == text[start : start + stream_len]
        assert vocab.decode(targets) == text[start + 1 : start + stream_len + 1]

    for (_, targets), (next_inputs, _) in zip(batches, batches[1:]):
        # each row's next window starts with the character its last window was predicting
        assert torch.equal(next_inputs[:, 0], targets[:, -1])


def test_validation_is_exactly_the_last_tenth():
    text = load_bundled_text()
    assert len(text) == 1115394 and len(set(text)) == 65  # the bundled copy is the published file
    vocab = CharVocab.from_text(text)
    train, val = split_train_val(vocab.encode(text))
    split = len(text) - len(val)
    assert split == int(0.9 * len(text))
    assert vocab.decode(val) == text[split:]
    assert vocab.decode(train[-100:]) == text[split - 100 : split]
    assert len(train) + len(val) == len(text)


def test_non_utf8_file_names_the_file_and_the_byte(tmp_path):
    path = tmp_path / "review.txt"
    path.write_bytes("it was a café\n".encode("cp1252"))
    with pytest.raises(InputError, match=r"review\.txt: not UTF-8 text \(byte 0xe9 at offset 12\)"):
        read_text(path)


def test_windows_1252_file_gives_the_clear_error():
    with pytest.raises(InputError, match=r"reviews\.pos: not UTF-8 text"):
        read_text(DATA / "reviews" / "reviews.pos")


def test_utf8_file_reads_back(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("Ünïcödé\nlines\n", encoding="utf-8")
    assert read_text(path) == "Ünïcödé\nlines\n"
