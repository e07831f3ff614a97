"""The forecasting network: an LSTM over a window of encoded inputs, a linear layer to H outputs per step
(the changes of the encoded series; see lstmkit.data.series_encoding)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmkit import LSTM
from lstmkit.data.series_encoding import gather_windows
from lstmkit.trace import GateTrace


class ForecastNetwork(nn.Module):
    """An LSTM reads the window; a linear layer maps its hidden state at each step to H outputs.

    The forecast is the last step's output. Training scores every step's (each step forecasts from what
    it has read so far), many targets per window: on short series this keeps the model from memorising
    windows. The output layer starts at zero, so the untrained model forecasts no change: the last value
    (or, with seasonal differencing, last season's value plus the latest seasonal change).
    """

    def __init__(self, input_size: int, horizon: int, hidden_size: int = 32, num_layers: int = 1):
        super().__init__()
        self.lstm = LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, horizon)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, windows: Tensor) -> Tensor:
        """windows: (B, W, C) -> outputs at every step (B, W, H)."""
        hidden, _ = self.lstm(windows)  # (B, W, hidden)
        return self.head(hidden)

    def gate_trace(self, window: Tensor) -> GateTrace:
        """The LSTM's gates for one window (W, C): each field (num_layers, W, hidden)."""
        return self.lstm(window, return_trace=True)[2]

    @torch.no_grad()
    def predict(self, inputs: Tensor, origins: Tensor, window: int, batch_size: int = 1024) -> Tensor:
        """The forecasts (last-step outputs) for many origins, in batches, in eval mode: (O, H)."""
        self.eval()
        parts = []
        for part in origins.split(batch_size):
            hidden, _ = self.lstm(gather_windows(inputs, part, window))  # (B, W, hidden)
            parts.append(self.head(hidden[:, -1]))  # the last step's forecast only
        return torch.cat(parts)
