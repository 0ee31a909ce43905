"""Compiled layer: quadrature for Gaussian averages and lambdified equations."""

from .compile import CompiledEquations, compile_expressions
from .quadrature import gauss_average, mp_gauss_average, mp_nested_average, nested_average, trapezoid_rule

__all__ = ["CompiledEquations", "compile_expressions", "gauss_average", "nested_average",
           "mp_gauss_average", "mp_nested_average", "trapezoid_rule"]
