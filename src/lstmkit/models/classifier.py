"""A sequence classifier over variable-length sequences, and an ensemble of them.

token ids (B, T) -> embedding -> dropout, or values (B, T, F) as they are
  -> stacked (bidirectional) lstmkit.LSTM over each sequence's valid steps (lengths=, no packing)
  -> pooling over time -> dropout -> linear: one logit for two classes (sigmoid), one per class (softmax).

For series read as overlapping windows, a convolutional branch (FCN, Wang et al. 2017; LSTM-FCN, Karim et
al. 2018) may read the same series at full resolution beside the LSTM; its pooled features join the
LSTM's before the linear layer.

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
        conv_filters: int = 0,
        window: int = 1,
        stride: int = 1,
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
            **({"conv_filters": conv_filters, "window": window, "stride": stride} if conv_filters else {}),
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
        self.conv = None
        if conv_filters:
            if vocab_size or input_size % window:
                raise ValueError("the convolutional branch reads values in windows: input_size = C * window")
            self.conv = ConvBranch(input_size // window, conv_filters, window, stride)
            features += conv_filters
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
        if self.conv is not None:
            features = torch.cat([features, self.conv(inputs, lengths)], dim=-1)  # (B, D*H + F)
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


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose batch statistics count only the valid positions M (B, 1, R) of X (B, F, R), summed
    over the processes of a torchrun job, so that a batch split over ranks is normalised as one process
    would normalise it:

        mean = sum(x * m) / sum(m),  var = sum((x - mean)^2 * m) / sum(m)   (per feature, over B and R)
        y = (x - mean) / sqrt(var + eps) * weight + bias

    Computed in float32 at least; in eval mode, the running statistics (as BatchNorm1d)."""

    def forward(self, x: Tensor, inside: Tensor) -> Tensor:  # (B, F, R), (B, 1, R) -> (B, F, R)
        if not self.training:
            return super().forward(x)
        dtype = torch.promote_types(x.dtype, torch.float32)  # bf16 under autocast: the sums in float32
        values, mask = x.to(dtype), inside.to(dtype)
        count = summed(mask.sum().reshape(1))  # (1,)
        mean = summed((values * mask).sum(dim=(0, 2))) / count  # (F,)
        centred = values - mean[:, None]  # (B, F, R)
        var = summed((centred.square() * mask).sum(dim=(0, 2))) / count  # (F,), biased
        with torch.no_grad():
            self.num_batches_tracked += 1
            unbiased = var * count / (count - 1).clamp(min=1)
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
        scaled = centred * torch.rsqrt(var + self.eps)[:, None] * self.weight[:, None] + self.bias[:, None]
        return scaled.to(x.dtype)


def summed(value: Tensor) -> Tensor:
    """VALUE summed over the processes of a torchrun job, gradients flowing back to each (as it is alone)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        from torch.distributed.nn.functional import all_reduce  # autograd-aware

        return all_reduce(value)
    return value


class ConvBranch(nn.Module):
    """FCN over the series at full resolution, rebuilt from the windows the LSTM reads:

        windows (B, S, C*W) -> series (B, C, R), R = (S - 1) * stride + W
        -> 3 x [Conv1d (kernel 8, 5, 3; F, 2F, F filters; R positions out) -> MaskedBatchNorm -> ReLU]
        -> mean over each series' valid positions -> (B, F)

    Positions after a shorter series' end are zeroed before each convolution and left out of the batch
    statistics and of the mean."""

    KERNELS = (8, 5, 3)

    def __init__(self, channels: int, filters: int, window: int, stride: int):
        super().__init__()
        if stride > window:
            raise ValueError(f"the convolutional branch needs stride <= window, got {stride} > {window}")
        self.channels, self.window, self.stride = channels, window, stride
        widths = (channels, filters, 2 * filters, filters)
        self.convs = nn.ModuleList(  # no bias: the normalisation's own follows
            nn.Conv1d(widths[k], widths[k + 1], kernel, padding=kernel // 2, bias=False)
            for k, kernel in enumerate(self.KERNELS)
        )
        self.norms = nn.ModuleList(MaskedBatchNorm(width) for width in widths[1:])

    def series(self, windows: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Windows (B, S, C*W), S_i valid per row -> the series (B, C, R) and each row's length R_i (B,):
        each value is the mean of the valid windows that hold it (they all hold the same value)."""
        steps = windows.shape[1]
        size = (steps - 1) * self.stride + self.window
        valid = (torch.arange(steps, device=windows.device) < lengths[:, None]).to(windows.dtype)  # (B, S)
        columns = (windows * valid[..., None]).transpose(1, 2)  # (B, C*W, S), padded windows 0
        fold = dict(output_size=(1, size), kernel_size=(1, self.window), stride=(1, self.stride))
        total = F.fold(columns, **fold)  # (B, C, 1, R): the sum over the windows that hold each value
        counts = F.fold(valid[:, None].expand(-1, self.window, -1), **fold)  # (B, 1, 1, R)
        series = (total / counts.clamp(min=1)).squeeze(2)  # (B, C, R)
        return series, (lengths - 1) * self.stride + self.window

    def forward(self, windows: Tensor, lengths: Tensor) -> Tensor:
        """Windows (B, S, C*W) with S_i valid steps (B,) -> pooled features (B, F)."""
        x, sizes = self.series(windows, lengths)  # (B, C, R), (B,)
        inside = (torch.arange(x.shape[2], device=x.device) < sizes[:, None])[:, None]  # (B, 1, R)
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x * inside)[..., : inside.shape[2]]  # (B, F_k, R): an even kernel gives R + 1
            x = torch.relu(norm(x, inside))
        return (x * inside).sum(dim=2) / sizes[:, None].to(x.dtype)  # (B, F)


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
