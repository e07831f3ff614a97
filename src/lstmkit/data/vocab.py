"""Word vocabulary for text classification: lower-cased tokens with punctuation split off, <pad> and <unk>."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# a word (letters, digits, underscores; inner apostrophes kept: "don't", "it's") or one punctuation mark
TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: "Not bad, really!" -> not, bad, ",", really, "!"."""
    return TOKEN.findall(text.lower())


class WordVocab:
    """Maps tokens to ids: 0 is <pad> (filler in a padded batch), 1 is <unk> (any word not kept)."""

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, words: list[str]):
        """WORDS lists the known tokens in id order, from id 2 on."""
        self.words = [self.PAD, self.UNK, *words]
        self.word_to_id = {word: index for index, word in enumerate(self.words)}
        if len(self.word_to_id) != len(self.words):
            raise ValueError("words must be distinct and must not contain <pad> or <unk>")

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1) -> WordVocab:
        """Keep the tokens seen at least MIN_COUNT times in TEXTS, most frequent first (ties: a-z)."""
        counts = Counter(token for text in texts for token in tokenize(text))
        kept = [word for word, count in counts.items() if count >= min_count]
        return cls(sorted(kept, key=lambda word: (-counts[word], word)))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """Token ids of TEXT; unknown tokens become 1 (<unk>); a text without tokens becomes [1]."""
        return [self.word_to_id.get(token, 1) for token in tokenize(text)] or [1]
