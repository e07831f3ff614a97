"""lstmkit: the LSTM from its gate equations, with a hand-derived backward, variants and gate traces.

from lstmkit import LSTM          # drop-in for torch.nn.LSTM
output, (h_n, c_n) = LSTM(8, 16)(x)
"""

from importlib.metadata import PackageNotFoundError, version

from lstmkit.backend import available as _available
from lstmkit.cell import LSTMCell
from lstmkit.layer import LSTM
from lstmkit.parameters import Variant
from lstmkit.trace import GateTrace

try:
    __version__ = version("lstmkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"


def backends() -> list[str]:
    """Names of the backends available here, best first; ``LSTM(..., backend="auto")`` takes the first."""
    return _available()


__all__ = ["LSTM", "LSTMCell", "GateTrace", "Variant", "backends", "__version__"]
