"""lstmkit: the LSTM from its gate equations, with a hand-derived backward, variants and gate traces.

from lstmkit import LSTM          # drop-in for torch.nn.LSTM
output, (h_n, c_n) = LSTM(8, 16)(x)

and the jobs around it as estimators: Forecaster, GlobalForecaster (many series), TextClassifier,
SeriesClassifier, CharLM, WordLM (fit, predict, evaluate, save, load, gates); lstmkit.load(DIR) opens
any model directory.
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

from lstmkit import datasets  # noqa: E402
from lstmkit.tasks.charlm import CharLM  # noqa: E402  (the estimators need the layer above)
from lstmkit.tasks.classify import SeriesClassifier  # noqa: E402
from lstmkit.tasks.estimator import load_estimator as load  # noqa: E402
from lstmkit.tasks.forecast import Forecaster  # noqa: E402
from lstmkit.tasks.forecast_panel import GlobalForecaster  # noqa: E402
from lstmkit.tasks.sentiment import TextClassifier  # noqa: E402
from lstmkit.tasks.wordlm import WordLM  # noqa: E402


def backends() -> list[str]:
    """Names of the backends available here, best first; ``LSTM(..., backend="auto")`` takes the first."""
    return _available()


__all__ = [
    "LSTM",
    "LSTMCell",
    "GateTrace",
    "Variant",
    "backends",
    "datasets",
    "load",
    "CharLM",
    "Forecaster",
    "GlobalForecaster",
    "SeriesClassifier",
    "TextClassifier",
    "WordLM",
    "__version__",
]
