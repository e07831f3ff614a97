"""Data readers and batchers."""

from lstmkit.data.text import BPTTBatcher, CharVocab, load_bundled_text, read_text, split_train_val

__all__ = ["BPTTBatcher", "CharVocab", "load_bundled_text", "read_text", "split_train_val"]
