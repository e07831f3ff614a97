"""A word language model: embedding -> stacked LSTM -> softmax over the vocabulary, with the regularisers
of Zaremba et al. (2014), Press & Wolf (2017) and AWD-LSTM (Merity et al. 2017).

    x_t   = drop_in(E'[w_t])             E (V, D); in training E' = E with whole rows (words) zeroed with
                                         probability embed_dropout, the rest scaled by 1 / (1 - p)
    h^l_t = LSTM_l(x^{l-1}_t, state)     x^l = drop(h^l) between layers and before the softmax
    p(w_{t+1} | w_1..t) = softmax(W_y x^L_t + b_y)      tie_weights: W_y = E (Press & Wolf)

drop zeroes units with probability p and scales the rest by 1 / (1 - p): a new mask at every step
(Zaremba), or with ``locked`` one mask per sequence, the same at every step (Gal & Ghahramani 2016; the
locked dropout of AWD-LSTM). With tied weights the last layer's h must have D units: it projects its
hidden_size units down to D (``proj_size``) where they differ. The recurrent regularisers, dropout on
h_{t-1} and DropConnect on W_hh (weight drop), are variants of the LSTM layer itself.

The output is the full softmax, or torch's adaptive softmax (Grave et al. 2017: the frequent words in a
head, the rare ones in smaller clusters; exact probabilities, less work for a large vocabulary).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit import LSTM, sampling
from lstmkit.trace import GateTrace

INIT_RANGE = 0.1  # embedding and softmax weights from U(-0.1, 0.1), as Zaremba et al. and torch's example
SOFTMAXES = ("full", "adaptive")
State = tuple[tuple[Tensor, Tensor], ...]  # per layer (h (1, B, P_l), c (1, B, H))


def adaptive_cutoffs(vocab_size: int) -> list[int]:
    """Cluster boundaries for the adaptive softmax over a vocabulary sorted by frequency: a head of the
    most frequent 2,000 words (20% of a larger vocabulary, half of a smaller one), then two clusters."""
    head = min(max(2000, vocab_size // 5), vocab_size // 2)
    middle = head + (vocab_size - head) // 3
    return sorted({c for c in (head, middle) if 0 < c < vocab_size - 1})


class WordNetwork(nn.Module):
    """Predicts the next word at every position (see the module's equations)."""

    def __init__(
        self,
        vocab_size: int,
        embed_size: int = 200,
        hidden_size: int = 200,
        num_layers: int = 2,
        *,
        dropout: float = 0.0,
        input_dropout: float | None = None,
        embed_dropout: float = 0.0,
        locked: bool = False,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        tie_weights: bool = False,
        softmax: str = "full",
    ):
        super().__init__()
        if softmax not in SOFTMAXES:
            raise ValueError(f"softmax must be one of {', '.join(SOFTMAXES)}, got {softmax!r}")
        if tie_weights and softmax != "full":
            raise ValueError("tie_weights needs the full softmax (the adaptive one has a matrix per cluster)")
        if tie_weights and embed_size > hidden_size:
            raise ValueError(
                f"tie_weights needs embed_size <= hidden_size (the last layer projects {hidden_size} units "
                f"to the embedding's {embed_size}), got embed_size {embed_size}"
            )
        self.dropout, self.embed_dropout, self.locked = dropout, embed_dropout, locked
        self.input_dropout = dropout if input_dropout is None else input_dropout
        self.softmax = softmax
        self.embed = nn.Embedding(vocab_size, embed_size)
        layers = []
        for layer in range(num_layers):
            last = layer == num_layers - 1
            project = embed_size if tie_weights and last and embed_size != hidden_size else 0
            layers.append(
                LSTM(
                    embed_size if layer == 0 else hidden_size,
                    hidden_size,
                    batch_first=True,
                    proj_size=project,
                    recurrent_dropout=recurrent_dropout,
                    weight_drop=weight_drop,
                )
            )
        self.layers = nn.ModuleList(layers)
        out_size = layers[-1].output_size
        nn.init.uniform_(self.embed.weight, -INIT_RANGE, INIT_RANGE)
        if softmax == "adaptive":
            cutoffs = adaptive_cutoffs(vocab_size)
            shrink = min(4.0, out_size ** (1 / len(cutoffs)))  # each cluster's size out_size / shrink^k >= 1
            self.head = nn.AdaptiveLogSoftmaxWithLoss(out_size, vocab_size, cutoffs, shrink)
        else:
            self.head = nn.Linear(out_size, vocab_size)
            nn.init.zeros_(self.head.bias)
            if tie_weights:
                self.head.weight = self.embed.weight
            else:
                nn.init.uniform_(self.head.weight, -INIT_RANGE, INIT_RANGE)

    @property
    def vocab_size(self) -> int:
        return self.embed.num_embeddings

    def _drop(self, x: Tensor, p: float) -> Tensor:
        """x (B, T, D) with dropout P: a mask per step, or per sequence when locked."""
        if not (p and self.training):
            return x
        shape = (x.shape[0], 1, x.shape[2]) if self.locked else tuple(x.shape)
        return x * sampling.dropout_mask(shape, p, x)

    def _embedding(self) -> Tensor:
        """E, or in training E with whole rows zeroed (embedding dropout)."""
        weight, p = self.embed.weight, self.embed_dropout
        if not (p and self.training):
            return weight
        return weight * sampling.dropout_mask((weight.shape[0], 1), p, weight)

    def forward(self, tokens: Tensor, state: State | None = None, return_trace: bool = False):
        """tokens (B, T) ids -> (hidden (B, T, P), state), or (hidden, state, trace) with return_trace.

        hidden is the last layer's output after dropout, what the softmax reads (``nll``, ``log_probs``);
        state is the carried state, per layer (h (1, B, P_l), c (1, B, H)); trace, each field
        (L, B, T, H), needs layers without projection."""
        x = self._drop(F.embedding(tokens, self._embedding()), self.input_dropout)  # (B, T, D)
        states, traces = [], []
        for layer, lstm in enumerate(self.layers):
            given = None if state is None else state[layer]
            if return_trace:
                x, carried, trace = lstm(x, given, return_trace=True)  # (B, T, P_l)
                traces.append(trace.map(lambda t: t[0]))  # (B, T, H)
            else:
                x, carried = lstm(x, given)
            states.append(carried)
            x = self._drop(x, self.dropout)
        if return_trace:
            return x, tuple(states), GateTrace.stack(traces)
        return x, tuple(states)

    def nll(self, hidden: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
        """Negative log-likelihood of TARGETS (B, T) after HIDDEN (B, T, P), in nats: the mean or sum."""
        flat, wanted = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1).long()  # (N, P), (N,)
        if self.softmax == "adaptive":
            loss = self.head(flat, wanted).loss  # the mean
            return loss * len(wanted) if reduction == "sum" else loss
        return F.cross_entropy(self.head(flat), wanted, reduction=reduction)

    def log_probs(self, hidden: Tensor) -> Tensor:
        """log p(next word) for HIDDEN (..., P): (..., V)."""
        flat = hidden.reshape(-1, hidden.shape[-1])
        out = self.head.log_prob(flat) if self.softmax == "adaptive" else F.log_softmax(self.head(flat), -1)
        return out.view(*hidden.shape[:-1], -1)

    @torch.no_grad()
    def sample(
        self,
        prompt: Tensor,
        length: int,
        temperature: float = 1.0,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue PROMPT, ids (T,) with T >= 1, by LENGTH sampled ids (LENGTH,): from the softmax at
        TEMPERATURE (0: the likeliest word), among the TOP_K likeliest only (0: all)."""
        if prompt.ndim != 1 or len(prompt) == 0:
            raise ValueError("prompt must be a non-empty 1-D tensor of ids")
        was_training = self.training
        self.eval()
        try:
            tokens, state, sampled = prompt.view(1, -1), None, []  # (1, T)
            for _ in range(length):
                hidden, state = self(tokens, state)
                scores = self.log_probs(hidden[0, -1])  # (V,)
                if top_k:
                    kept = scores.topk(min(top_k, len(scores)))
                    scores = torch.full_like(scores, -torch.inf).scatter_(0, kept.indices, kept.values)
                if temperature == 0:
                    tokens = scores.argmax().view(1, 1)
                else:
                    probs = torch.softmax(scores / temperature, dim=-1)
                    tokens = torch.multinomial(probs, 1, generator=generator).view(1, 1)
                sampled.append(tokens.view(1))
            return torch.cat(sampled) if sampled else prompt.new_empty(0)
        finally:
            self.train(was_training)
