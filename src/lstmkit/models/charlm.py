"""A character language model: embedding -> stacked LSTM -> linear layer giving next-character logits."""

from __future__ import annotations

import torch
from torch import nn

from lstmkit import LSTM


class CharNetwork(nn.Module):
    """Predicts the next character at every position; the softmax lives in the loss and in `sample`."""

    def __init__(
        self,
        vocab_size: int,
        embed_size: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size)
        between_layers = dropout if num_layers > 1 else 0.0  # LSTM's dropout acts between stacked layers
        self.lstm = LSTM(embed_size, hidden_size, num_layers, batch_first=True, dropout=between_layers)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens: torch.Tensor, state=None, return_trace: bool = False):
        """Return (logits, state), or (logits, state, trace) with return_trace.

        tokens: (B, T) ids. state: None or (h, c), each (num_layers, B, H), as the LSTM returns it.
        logits: (B, T, V). trace: the LSTM's gate trace, each field (num_layers, B, T, H).
        """
        embedded = self.embed(tokens)  # (B, T, E)
        if return_trace:
            hidden, state, trace = self.lstm(embedded, state, return_trace=True)  # (B, T, H)
            return self.head(hidden), state, trace
        hidden, state = self.lstm(embedded, state)  # (B, T, H)
        return self.head(hidden), state

    @torch.no_grad()
    def sample(
        self,
        prompt: torch.Tensor,
        length: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue PROMPT, ids of shape (T,) with T >= 1, by LENGTH sampled ids; returns shape (LENGTH,).

        Temperature below 1 sharpens the distribution, above 1 flattens it; 0 always picks the likeliest.
        """
        if prompt.ndim != 1 or len(prompt) == 0:
            raise ValueError("prompt must be a non-empty 1-D tensor of ids")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        was_training = self.training
        self.eval()
        try:
            tokens, state, sampled = prompt.view(1, -1), None, []  # (1, T)
            for _ in range(length):
                logits, state = self(tokens, state)
                next_logits = logits[0, -1]  # (V,)
                if temperature == 0:
                    tokens = next_logits.argmax().view(1, 1)
                else:
                    probs = torch.softmax(next_logits / temperature, dim=-1)  # (V,)
                    tokens = torch.multinomial(probs, 1, generator=generator).view(1, 1)
                sampled.append(tokens.view(1))
            return torch.cat(sampled) if sampled else prompt.new_empty(0)
        finally:
            self.train(was_training)
