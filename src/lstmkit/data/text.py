"""Text for character models: reading, a character vocabulary, and truncated-BPTT batches."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import torch

from lstmkit.errors import InputError

VALIDATION_FRACTION = 0.1


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file; raise InputError naming the file (and the first bad byte) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    data = path.read_bytes()
    if not data:
        raise InputError(f"{path}: the file is empty; give a file with text in it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad_byte = data[error.start]
        raise InputError(
            f"{path}: not UTF-8 text (byte 0x{bad_byte:02x} at offset {error.start}); "
            "re-save the file as UTF-8"
        ) from None


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


def split_train_val(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a token stream into training (first 90%) and validation (last 10%) parts."""
    split = int(len(ids) * (1 - VALIDATION_FRACTION))
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
