"""Models built around lstmkit.LSTM."""

from lstmkit.models.charlm import CharLM

__all__ = ["CharLM"]
