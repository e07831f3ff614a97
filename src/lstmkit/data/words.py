"""Words for language models: tokens per line, a vocabulary capped by frequency, a corpus read as ids.

A line becomes its tokens and then ``<eos>``. Two tokenisers:
  split  the line's space-separated tokens, as they are: for text tokenised already (Penn Treebank's
         files, where numbers read ``N`` and rare words ``<unk>``)
  words  words (letters, digits, inner apostrophes: "don't") and single punctuation marks, case kept:
         "Don't stop." -> Don't, stop, .

A file is read twice in chunks (``read_word_corpus``): one pass counts the tokens (and their words, when
the vocabulary is built), the second writes one id per token into one array (2 bytes each for up to
65,536 words), so a corpus of N tokens takes 2N bytes and never its text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from lstmkit.data.text import text_chunks
from lstmkit.errors import InputError

TOKENIZERS = ("split", "words")
WORD = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")


def line_tokens(line: str, tokenizer: str = "split") -> list[str]:
    """The tokens of one line and its ``<eos>``: " the N cats \\n" -> the, N, cats, <eos>."""
    tokens = line.split() if tokenizer == "split" else WORD.findall(line)
    tokens.append(WordVocabulary.EOS)
    return tokens


def text_tokens(text: str, tokenizer: str = "split", end: bool = True) -> list[str]:
    """The tokens of TEXT, line by line; END False leaves out the last line's ``<eos>`` (a prompt that
    continues on its line)."""
    lines = text.split("\n")
    if lines[-1] == "" and len(lines) > 1:
        lines.pop()  # the final line break ends the last line; it starts none
        end = True
    tokens = [token for line in lines for token in line_tokens(line, tokenizer)]
    return tokens if end else tokens[:-1]


def lines_of(path: str | Path) -> Iterator[str]:
    """The lines of a UTF-8 file without their line breaks, read in chunks; InputError as ``text_chunks``."""
    rest = ""
    for text in text_chunks(path):
        lines = (rest + text).split("\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


class WordVocabulary:
    """Maps words to ids: 0 is ``<unk>`` (any word not kept, and the corpus's own ``<unk>``), 1 is
    ``<eos>``, then the kept words, most frequent first."""

    UNK, EOS = "<unk>", "<eos>"

    def __init__(self, words: list[str]):
        """WORDS lists the known words in id order, from id 2 on."""
        self.words = [self.UNK, self.EOS, *words]
        self.word_to_id = {word: index for index, word in enumerate(self.words)}
        if len(self.word_to_id) != len(self.words):
            raise ValueError("words must be distinct and must not contain <unk> or <eos>")

    @classmethod
    def from_counts(cls, counts: Counter, max_size: int, min_count: int = 1) -> WordVocabulary:
        """The MAX_SIZE - 2 most frequent words seen at least MIN_COUNT times (ties: in code point order),
        with <unk> and <eos>."""
        kept = [w for w, n in counts.items() if n >= min_count and w not in (cls.UNK, cls.EOS)]
        kept.sort(key=lambda word: (-counts[word], word))
        return cls(kept[: max(0, max_size - 2)])

    def __len__(self) -> int:
        return len(self.words)

    def ids(self, tokens: Iterable[str]) -> list[int]:
        lookup = self.word_to_id.get
        return [lookup(token, 0) for token in tokens]

    def encode(self, text: str, tokenizer: str = "split", end: bool = True) -> torch.Tensor:
        """The ids of TEXT's tokens (see ``text_tokens``), shape (N,), dtype long; unknown words are 0."""
        return torch.tensor(self.ids(text_tokens(text, tokenizer, end)), dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """The words of IDS joined by spaces, a line break for each <eos>."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        pieces: list[str] = []
        for word in (self.words[i] for i in ids):
            if word == self.EOS:
                pieces.append("\n")
            else:
                pieces.append(word if not pieces or pieces[-1] == "\n" else " " + word)
        return "".join(pieces)


def read_word_corpus(
    path: str | Path,
    tokenizer: str = "split",
    vocab: WordVocabulary | None = None,
    max_vocab: int = 10_000,
    min_count: int = 1,
) -> tuple[WordVocabulary, torch.Tensor]:
    """The vocabulary of PATH (built from its words unless given) and its tokens as ids, shape (N,):
    uint16 for up to 65,536 words, else int32. InputError for a file without a word."""
    counts: Counter = Counter()
    size = words = 0
    for line in lines_of(path):
        tokens = line_tokens(line, tokenizer)
        size += len(tokens)
        words += len(tokens) - 1
        if vocab is None:
            counts.update(tokens)
    if words == 0:
        raise InputError(f"{path}: no words, only empty lines; give a file with text in it")
    if vocab is None:
        vocab = WordVocabulary.from_counts(counts, max_vocab, min_count)
        del counts
    ids = np.empty(size, dtype=np.uint16 if len(vocab) <= 1 << 16 else np.int32)
    start = 0
    for line in lines_of(path):
        line_ids = vocab.ids(line_tokens(line, tokenizer))
        ids[start : start + len(line_ids)] = line_ids
        start += len(line_ids)
    return vocab, torch.from_numpy(ids)
