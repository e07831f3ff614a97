"""Text for character models: reading, a character vocabulary, and truncated-BPTT batches.

A corpus is read in chunks (``read_corpus``): one pass finds the distinct characters, a second writes
one id per character into one array (a byte each for up to 256 distinct characters), so that a 200 MB
file takes about 200 MB, never the text itself, and the training and validation parts are views of it.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from lstmkit.errors import InputError

VALIDATION_FRACTION = 0.1
MAX_VALIDATION = 500_000  # characters at most held out: enough for a steady estimate, quick to score
CHUNK_BYTES = 1 << 22  # read and decoded at a time
CODE_POINTS = 0x110000


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file; raise InputError naming the file (and the first bad byte) otherwise."""
    return "".join(text_chunks(path))


def text_chunks(path: str | Path) -> Iterator[str]:
    """The text of a UTF-8 file, CHUNK_BYTES at a time; InputError naming the file, offset and line of
    the first byte that is not UTF-8 text (or is NUL: binary data, or UTF-16)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1  # of the chunk's first byte
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            pending = decoder.getstate()[0]  # bytes of a character split by the last chunk
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as error:
                data = pending + chunk
                at = offset - len(pending) + error.start
                line = lines + data.count(b"\n", 0, error.start)  # a split character holds no newline
                raise InputError(
                    f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {at}) on line {line}; "
                    "re-save the file as UTF-8"
                ) from None
            if "\0" in text:
                bad = chunk.find(b"\0")
                line = lines + chunk.count(b"\n", 0, bad)
                raise InputError(
                    f"{path}: a NUL byte at offset {offset + bad} on line {line}: binary data or UTF-16, "
                    "not UTF-8 text; re-save the file as UTF-8"
                )
            offset, lines = offset + len(chunk), lines + chunk.count(b"\n")
            yield text
    if decoder.getstate()[0]:
        raise InputError(
            f"{path}: not UTF-8 text (the file ends inside a character, offset {offset}); "
            "re-save the file as UTF-8"
        )
    if offset == 0:
        raise InputError(f"{path}: the file is empty; give a file with text in it")


def read_corpus(path: str | Path, vocab: CharVocab | None = None) -> tuple[CharVocab, torch.Tensor]:
    """The vocabulary of a UTF-8 file (built from it, unless given) and its characters as ids, shape (N,):
    uint8 for up to 256 ids, else int32; the text is read twice in chunks and never held whole."""
    size, seen = 0, set()
    for text in text_chunks(path):
        size += len(text)
        if vocab is None:
            seen.update(text)
    if vocab is None:
        vocab = CharVocab("".join(sorted(seen - {CharVocab.UNKNOWN})))
    table = np.zeros(CODE_POINTS, dtype=np.uint8 if len(vocab) <= 256 else np.int32)  # code point -> id
    table[[ord(c) for c in vocab.chars[1:]]] = np.arange(1, len(vocab))
    ids, start = np.empty(size, dtype=table.dtype), 0
    for text in text_chunks(path):
        ids[start : start + len(text)] = table[_code_points(text)]
        start += len(text)
    return vocab, torch.from_numpy(ids)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def load_bundled_text(name: str = "tinyshakespeare.txt") -> str:
    """Return a text shipped inside the package (lstmkit/bundled/NAME)."""
    return (resources.files("lstmkit") / "bundled" / name).read_text(encoding="utf-8")


class CharVocab:
    """Maps characters to ids and back; id 0 stands for any character not seen when it was built."""

    UNKNOWN = "\N{REPLACEMENT CHARACTER}"

    def __init__(self, chars: str):
        """CHARS lists the known characters in id order, from id 1 on."""
        if self.UNKNOWN in chars or len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct and must not contain CharVocab.UNKNOWN")
        self.chars = self.UNKNOWN + chars
        self.char_to_id = {char: index for index, char in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Build the vocabulary of the distinct characters of TEXT, in code point order."""
        return cls("".join(sorted(set(text) - {cls.UNKNOWN})))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Return the ids of TEXT, shape (len(text),), dtype long; unknown characters become id 0."""
        return torch.tensor([self.char_to_id.get(char, 0) for char in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """Return the text of a 1-D sequence of ids."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.chars[index] for index in ids)


def split_train_val(ids: torch.Tensor, most: int = MAX_VALIDATION) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a token stream into training and validation parts (views): the last 10%, at most MOST tokens,
    for validation, the rest before it for training."""
    split = max(int(len(ids) * (1 - VALIDATION_FRACTION)), len(ids) - most)
    return ids[:split], ids[split:]


class BPTTBatcher:
    """Cuts a token stream into `batch_size` contiguous streams and walks along them in windows.

    Row b of every batch comes from stream b, and each batch continues where the last one stopped,
    so an LSTM's final state for one batch is the right initial state for the next (truncated BPTT).
    The streams are `(len(ids) - 1) // batch_size` tokens long; the last window may be shorter.
    """

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int):
        stream_len = (len(ids) - 1) // batch_size
        if stream_len < 1:
            raise ValueError(f"{len(ids)} tokens are too few for {batch_size} streams")
        self.seq_len = seq_len
        self.inputs = ids[: batch_size * stream_len].view(batch_size, stream_len)  # (B, L)
        self.targets = ids[1 : batch_size * stream_len + 1].view(batch_size, stream_len)  # (B, L)

    def __len__(self) -> int:
        return -(-self.inputs.shape[1] // self.seq_len)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (inputs, targets), each (B, T); targets are the inputs shifted one character on."""
        for start in range(0, self.inputs.shape[1], self.seq_len):
            stop = start + self.seq_len
            yield self.inputs[:, start:stop], self.targets[:, start:stop]
