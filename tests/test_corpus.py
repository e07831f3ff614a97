"""The chunked corpus reader: the same ids as encoding the whole text, characters split across chunks,
one byte per character, and a peak memory of about the ids alone."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lstmkit.data import text as text_module
from lstmkit.data.text import CharVocab, load_bundled_text, read_corpus, split_train_val


def test_chunks_that_split_characters_give_the_ids_of_the_whole_text(tmp_path, monkeypatch):
    monkeypatch.setattr(text_module, "CHUNK_BYTES", 7)  # 2- and 4-byte characters straddle chunks
    text = "Héllo wörld\n🐍 snake — done\r\n\N{REPLACEMENT CHARACTER}" * 9
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    vocab, ids = read_corpus(path)
    expected = CharVocab.from_text(text)
    assert vocab.chars == expected.chars and ids.dtype == torch.uint8
    assert ids.tolist() == expected.encode(text).tolist()
    known = CharVocab("Hlo wrd")  # a model's vocabulary: the other characters become 0
    assert read_corpus(path, known)[1].tolist() == known.encode(text).tolist()


def test_more_than_256_characters_take_int32_ids(tmp_path):
    text = "".join(map(chr, range(0x400, 0x400 + 300))) * 2
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    vocab, ids = read_corpus(tmp_path / "t.txt")
    assert len(vocab) == 301 and ids.dtype == torch.int32 and vocab.decode(ids) == text


def test_validation_is_the_last_tenth_up_to_a_cap():
    ids = torch.arange(50)
    train, val = split_train_val(ids)
    assert (len(train), len(val)) == (45, 5) and val.tolist() == list(range(45, 50))
    train, val = split_train_val(ids, most=3)
    assert (len(train), len(val)) == (47, 3) and train.data_ptr() == ids.data_ptr()  # views, no copies


PROBE = """
import resource, sys
from lstmkit.data.text import read_corpus, split_train_val
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
vocab, ids = read_corpus(sys.argv[1])
train, val = split_train_val(ids)
print(len(ids), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux's")
def test_reading_a_corpus_takes_about_one_byte_per_character(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(load_bundled_text().encode("utf-8") * 30)  # 33.5 MB: the bundled tinyshakespeare
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    chars, grown_mib = map(int, done.stdout.split())
    assert chars == 30 * 1115394
    # the ids (32 MiB) and a few chunks; the whole text encoded as a list and a tensor of int64 took 17 times
    assert grown_mib < chars / 2**20 + 64
