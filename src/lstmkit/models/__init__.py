"""The networks built around lstmkit.LSTM (the estimators in lstmkit.tasks train them)."""

from lstmkit.models.charlm import CharNetwork
from lstmkit.models.classifier import Ensemble, SequenceClassifier
from lstmkit.models.forecaster import ForecastNetwork

__all__ = ["CharNetwork", "Ensemble", "ForecastNetwork", "SequenceClassifier"]
