"""A sequence classifier over variable-length sequences, and an ensemble of them.

token ids (B, T) -> embedding -> dropout, or values (B, T, F) as they are
  -> stacked (bidirectional) lstmkit.LSTM over each sequence's valid steps (lengths=, no packing)
  -> pooling over time -> dropout -> linear: one logit for two classes (sigmoid), one per class (softmax).

An Ensemble holds several such networks of one shape, trained one after another from their own seeds; in
use their logits are averaged (on rt-polarity, 4 members add about 1.5 points of accuracy over one: a single
network overfits within two epochs, and the members' errors differ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit import LSTM
from lstmkit.sampling import Dropout
from lstmkit.trace import GateTrace

POOLINGS = {
    "last": "the final states: the forward direction's last valid step, the backward direction's first",
    "max": "the largest output of each unit over the valid steps",
    "mean": "the mean output of each unit over the valid steps",
}


class SequenceClassifier(nn.Module):
    """Logits for a padded batch; ``SequenceClassifier(**model.config)`` rebuilds the same architecture."""

    # word vectors start uniform in [-0.1, 0.1] (Kim 2014 uses 0.25): from torch's N(0, 1), Adam's small
    # steps hardly move the vectors of rare words, and rt-polarity accuracy drops by about 3 points
    EMBED_INIT = 0.1

    def __init__(
        self,
        num_classes: int,
        *,
        vocab_size: int = 0,
        embed_size: int = 0,
        input_size: int = 0,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        pooling: str = "last",
        dropout: float = 0.5,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if (vocab_size > 0) == (input_size > 0):
            raise ValueError("give vocab_size (token ids in) or input_size (values in), not both")
        self.config = {
            "num_classes": num_classes,
            "vocab_size": vocab_size,
            "embed_size": embed_size,
            "input_size": input_size,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "bidirectional": bidirectional,
            "pooling": pooling,
            "dropout": dropout,
        }
        self.embed = None
        if vocab_size:
            self.embed = nn.Embedding(vocab_size, embed_size, padding_idx=0)
            with torch.no_grad():
                self.embed.weight[1:].uniform_(-self.EMBED_INIT, self.EMBED_INIT)
        self.dropout = Dropout(dropout)
        self.lstm = LSTM(
            embed_size if vocab_size else input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        features = hidden_size * self.lstm.num_directions
        self.head = nn.Linear(features, 1 if num_classes == 2 else num_classes)

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """inputs: (B, T) ids or (B, T, F) values; lengths: (B,). Returns logits (B, 1) or (B, C)."""
        x = self.dropout(self.embed(inputs)) if self.embed is not None else inputs  # (B, T, E) or (B, T, F)
        output, (h_n, _) = self.lstm(x, lengths=lengths)  # (B, T, D*H), (L*D, B, H); padded steps are 0
        pooling = self.config["pooling"]
        if pooling == "last":
            features = torch.cat(list(h_n[-self.lstm.num_directions :]), dim=-1)  # (B, D*H)
        elif pooling == "max":
            padded = torch.arange(output.shape[1], device=output.device) >= lengths[:, None]  # (B, T)
            features = output.masked_fill(padded[..., None], -torch.inf).amax(dim=1)  # (B, D*H)
        else:
            features = output.sum(dim=1) / lengths[:, None].to(output.dtype)  # (B, D*H)
        return self.head(self.dropout(features))

    def gate_trace(self, inputs: Tensor) -> GateTrace:
        """The LSTM's gates for one sequence, (T,) ids or (T, F) values: each field (L*D, T, H)."""
        x = self.dropout(self.embed(inputs)) if self.embed is not None else inputs  # (T, E) or (T, F)
        return self.lstm(x, return_trace=True)[2]

    @staticmethod
    def loss(logits: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy: binary on the one logit for two classes, categorical otherwise."""
        if logits.shape[-1] == 1:
            return F.binary_cross_entropy_with_logits(logits.squeeze(-1), labels.to(logits.dtype))
        return F.cross_entropy(logits, labels)

    @staticmethod
    def probabilities(logits: Tensor) -> Tensor:
        """(B, C) class probabilities: sigmoid of the one logit as class 1's, or softmax over C logits."""
        if logits.shape[-1] == 1:
            positive = torch.sigmoid(logits)  # (B, 1)
            return torch.cat([1 - positive, positive], dim=-1)
        return torch.softmax(logits, dim=-1)


class Ensemble(nn.Module):
    """MEMBERS SequenceClassifiers built from the same CONFIG: ``Ensemble(**model.config)`` rebuilds it.
    Logits (B, 1) or (B, C): the members' mean."""

    def __init__(self, members: int, **config):
        super().__init__()
        if members < 2:
            raise ValueError(f"an ensemble needs 2 members or more, got {members}")
        self.members = nn.ModuleList(SequenceClassifier(**config) for _ in range(members))
        self.config = {"members": members, **self.members[0].config}

    @classmethod
    def of(cls, members: list[SequenceClassifier]) -> Ensemble:
        """The ensemble of trained MEMBERS (of one config)."""
        ensemble = cls(len(members), **members[0].config)
        ensemble.members = nn.ModuleList(members)
        return ensemble

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """As SequenceClassifier's: the mean of the members' logits."""
        return torch.stack([member(inputs, lengths) for member in self.members]).mean(dim=0)  # (B, .)

    def gate_trace(self, inputs: Tensor) -> GateTrace:
        """The first member's gates (see SequenceClassifier.gate_trace)."""
        return self.members[0].gate_trace(inputs)

    loss = staticmethod(SequenceClassifier.loss)
    probabilities = staticmethod(SequenceClassifier.probabilities)


def build_classifier(config: dict) -> SequenceClassifier | Ensemble:
    """The model that CONFIG (a model's ``config``) describes: an Ensemble when it has members > 1."""
    config = dict(config)
    members = config.pop("members", 1)
    return Ensemble(members, **config) if members > 1 else SequenceClassifier(**config)


def pad_batch(sequences: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Sequences of (T_i,) or (T_i, F) -> zero-padded (B, T) or (B, T, F), and lengths (B,)."""
    lengths = torch.tensor([len(s) for s in sequences])
    return nn.utils.rnn.pad_sequence(sequences, batch_first=True), lengths


@torch.no_grad()
def predict_logits(
    model: SequenceClassifier | Ensemble, inputs: list[Tensor], batch_size: int = 256
) -> Tensor:
    """Logits (N, 1) or (N, C) in eval mode, batched by similar length, returned in the order of INPUTS."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    classes = model.config["num_classes"]
    logits = torch.empty(len(inputs), 1 if classes == 2 else classes)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        logits[chosen] = model(*pad_batch([inputs[i] for i in chosen]))
    model.train(was_training)
    return logits
