"""Symbolic layer: Gaussian-average operators and the derivation of mean-field equations."""

from .averages import GaussAvg, GaussCov, average, nested
from .derive import derive
from .equations import MeanFieldEquations

__all__ = ["GaussAvg", "GaussCov", "average", "nested", "derive", "MeanFieldEquations"]
