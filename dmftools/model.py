"""Model descriptions: low-rank plus random connectivity with Gaussian loadings.

This is the first layer of the data path (model -> symbolic -> compiled -> solvers).
It imports nothing from the other layers.

Connectivity is ``J = g chi + (1/N) sum_k m_k n_k^T`` with ``chi_ij ~ N(0, 1/N)``.
Per unit, the loadings ``(m_1..m_R, n_1..n_R)`` and the external input ``I`` are
jointly Gaussian, given by a mean vector and a covariance matrix ordered as
``(m_1, ..., m_R, n_1, ..., n_R, I)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Union

import numpy as np
import sympy as sp

__all__ = ["GaussianLowRank", "RankOne", "TransferFunction", "transfer_function", "X"]

#: The symbol in which transfer functions are written.
X = sp.Symbol("x", real=True)


class logcosh(sp.Function):
    r"""``log(cosh(x))``, the primitive of ``tanh``, evaluated without overflow.

    Its derivative is ``tanh``; numerically it is
    ``|x| + log1p(exp(-2|x|)) - log 2``, finite for every finite ``x``.

    Examples
    --------
    >>> import sympy as sp
    >>> from dmftools.model import logcosh, X
    >>> sp.diff(logcosh(X), X)
    tanh(x)
    """

    nargs = 1

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return sp.tanh(self.args[0])

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.S.Zero

    def _eval_rewrite_as_cosh(self, arg, **kwargs):
        return sp.log(sp.cosh(arg))

    def _latex(self, printer, exp=None):
        body = r"\log\cosh\left(%s\right)" % printer._print(self.args[0])
        return r"\left(%s\right)^{%s}" % (body, exp) if exp else body

    def _numpycode(self, printer):
        return "logcosh(%s)" % printer._print(self.args[0])

    _mpmathcode = _numpycode


@dataclass(frozen=True)
class TransferFunction:
    """A transfer function ``phi`` and its primitive ``Phi`` (both SymPy, in :data:`X`).

    Parameters
    ----------
    name : str
        Short name used in results and reprs.
    expr : sympy.Expr
        ``phi(x)`` as an expression in :data:`X`.
    primitive : sympy.Expr or None
        ``Phi(x)`` with ``Phi' = phi``; needed only for chaotic states. Found with
        :func:`sympy.integrate` when not given (and checked by differentiation).
    """

    name: str
    expr: sp.Expr
    primitive: sp.Expr | None = None

    def __post_init__(self):
        if not isinstance(self.expr, sp.Expr):
            raise TypeError(f"phi: expected a SymPy expression in x, got {type(self.expr).__name__}")
        extra = self.expr.free_symbols - {X}
        if extra:
            raise ValueError(
                f"phi: the transfer function may depend only on x, found {sorted(map(str, extra))}"
            )
        if self.primitive is not None:
            check = sp.simplify(sp.diff(self.primitive, X) - self.expr)
            if check != 0:
                raise ValueError(f"phi: the given primitive of {self.expr} is wrong (Phi' - phi = {check})")

    def get_primitive(self) -> sp.Expr:
        """``Phi(x)`` with ``Phi' = phi``, computed and verified once if not given."""
        if self.primitive is not None:
            return self.primitive
        prim = sp.integrate(self.expr, X)
        if prim.has(sp.Integral) or sp.simplify(sp.diff(prim, X) - self.expr) != 0:
            raise ValueError(
                f"phi: SymPy found no primitive of {self.expr}; chaotic states need one. "
                "Pass TransferFunction(name, expr, primitive=...)"
            )
        object.__setattr__(self, "primitive", prim)
        return prim


def _builtin_transfer_functions():
    half = sp.Rational(1, 2)
    a = sp.sqrt(sp.pi) / 2  # erf(a x) has slope 1 at 0, like tanh
    return {
        "tanh": TransferFunction("tanh", sp.tanh(X), logcosh(X)),
        "erf": TransferFunction(
            "erf", sp.erf(a * X), X * sp.erf(a * X) + sp.exp(-(a**2) * X**2) / (a * sp.sqrt(sp.pi))
        ),
        # (1 + tanh(x/2))/2 == 1/(1 + exp(-x)), written so numpy never overflows
        "sigmoid": TransferFunction(
            "sigmoid", half * (1 + sp.tanh(X / 2)), half * X + logcosh(X / 2)
        ),
    }


BUILTIN_PHI = _builtin_transfer_functions()


def transfer_function(phi: Union[str, sp.Expr, TransferFunction] = "tanh") -> TransferFunction:
    """Normalise a user's ``phi`` argument.

    Parameters
    ----------
    phi : {"tanh", "erf", "sigmoid"}, sympy.Expr or TransferFunction
        A built-in name; an expression in ``dmftools.X`` (``sympy.Symbol("x", real=True)``);
        or a :class:`TransferFunction`.

    Examples
    --------
    >>> from dmftools.model import transfer_function, X
    >>> transfer_function("erf").expr
    erf(sqrt(pi)*x/2)
    >>> transfer_function(X / (1 + X**2)).name
    'x/(x**2 + 1)'
    """
    if isinstance(phi, TransferFunction):
        return phi
    if isinstance(phi, str):
        try:
            return BUILTIN_PHI[phi]
        except KeyError:
            raise ValueError(
                f"phi: unknown transfer function {phi!r}; built-in ones are {sorted(BUILTIN_PHI)}, "
                "or pass a SymPy expression in dmftools.X"
            ) from None
    if isinstance(phi, sp.Expr):
        plain = sp.Symbol("x")
        expr = phi.xreplace({plain: X})  # accept a plain Symbol('x') too
        return TransferFunction(str(expr), expr)
    raise TypeError(f"phi: expected a name, a SymPy expression or a TransferFunction, got {type(phi).__name__}")


@dataclass(frozen=True)
class GaussianLowRank:
    """Rank-R structure plus random connectivity, Gaussian loadings and inputs.

    Parameters
    ----------
    rank : int
        R >= 1, the number of (m_k, n_k) pairs.
    means : array_like, shape (2R+1,)
        Means of ``(m_1..m_R, n_1..n_R, I)``.
    cov : array_like, shape (2R+1, 2R+1)
        Their covariance: symmetric, positive semi-definite, finite.
    phi : str, sympy.Expr or TransferFunction, default "tanh"
        The transfer function.

    Notes
    -----
    The structure strength of a unit-rank model is the overlap
    ``m^T n / N = M_m M_n + Cov(m, n)`` (see :attr:`overlap`).

    Examples
    --------
    >>> import numpy as np, dmftools as dmf
    >>> net = dmf.GaussianLowRank(rank=2, means=[1, 0, 2, 0, 0], cov=np.eye(5))
    >>> net.variable_names
    ('m1', 'm2', 'n1', 'n2', 'I')
    >>> net.overlap
    array([[2., 0.],
           [0., 0.]])
    """

    rank: int
    means: np.ndarray
    cov: np.ndarray
    phi: TransferFunction = field(default_factory=lambda: BUILTIN_PHI["tanh"])

    def __post_init__(self):
        if isinstance(self.rank, bool) or not isinstance(self.rank, (int, np.integer)):
            raise TypeError(f"rank: expected an integer >= 1, got {self.rank!r}")
        if self.rank < 1:
            raise ValueError(f"rank: must be >= 1, got {self.rank}")
        size = 2 * int(self.rank) + 1
        means = np.asarray(self.means, dtype=float)
        cov = np.asarray(self.cov, dtype=float)
        if means.shape != (size,):
            raise ValueError(
                f"means: expected shape ({size},) for rank {self.rank} (m_1..m_R, n_1..n_R, I), got {means.shape}"
            )
        if cov.shape != (size, size):
            raise ValueError(f"cov: expected shape ({size}, {size}) for rank {self.rank}, got {cov.shape}")
        if not np.all(np.isfinite(means)):
            raise ValueError(f"means: all entries must be finite, got {means}")
        if not np.all(np.isfinite(cov)):
            raise ValueError("cov: all entries must be finite")
        if not np.allclose(cov, cov.T, rtol=0, atol=1e-12 * max(1.0, np.abs(cov).max())):
            raise ValueError("cov: the covariance matrix must be symmetric")
        names = self._names(int(self.rank))
        neg = [names[i] for i in range(size) if cov[i, i] < 0]
        if neg:
            raise ValueError(f"cov: variances must be >= 0, negative for {neg}")
        eig = np.linalg.eigvalsh(cov)
        if eig.min() < -1e-10 * max(1.0, eig.max()):
            raise ValueError(
                f"cov: the covariance matrix must be positive semi-definite (smallest eigenvalue {eig.min():.3g})"
            )
        object.__setattr__(self, "rank", int(self.rank))
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "phi", transfer_function(self.phi))

    @staticmethod
    def _names(rank):
        return tuple([f"m{k + 1}" for k in range(rank)] + [f"n{k + 1}" for k in range(rank)] + ["I"])

    @property
    def variable_names(self) -> tuple[str, ...]:
        """Names of the jointly Gaussian per-unit variables, in the order of ``means``."""
        return self._names(self.rank)

    @property
    def overlap(self) -> np.ndarray:
        """``(m_k^T n_l / N)_{kl} = M_{m_k} M_{n_l} + Cov(m_k, n_l)``, shape (R, R)."""
        R = self.rank
        mean_m, mean_n = self.means[:R], self.means[R : 2 * R]
        return np.outer(mean_m, mean_n) + self.cov[:R, R : 2 * R]

    # -- symbolic view -------------------------------------------------------------
    def symbols(self):
        """Symbolic means and covariance, and the numeric values of their symbols.

        Entries that are exactly zero stay structural zeros, so equations show only the
        terms the model has. Variances appear as squares of standard-deviation symbols.

        Returns
        -------
        means : sympy.Matrix, shape (2R+1, 1)
        cov : sympy.Matrix, shape (2R+1, 2R+1)
        values : dict
            ``{Symbol: float}`` for every symbol used.
        """
        labels = self._symbol_labels()
        size = 2 * self.rank + 1
        values: dict[sp.Symbol, float] = {}
        mean_syms = []
        for i in range(size):
            if self.means[i] == 0:
                mean_syms.append(sp.S.Zero)
            else:
                s = sp.Symbol(f"M_{labels[i]}", real=True)
                values[s] = float(self.means[i])
                mean_syms.append(s)
        cov_syms = sp.zeros(size, size)
        for i in range(size):
            for j in range(i, size):
                if self.cov[i, j] == 0:
                    continue
                if i == j:
                    s = sp.Symbol(f"Sigma_{labels[i]}", nonnegative=True)
                    values[s] = math.sqrt(self.cov[i, i])
                    cov_syms[i, i] = s**2
                else:
                    s = sp.Symbol(f"Sigma_{labels[i]}{labels[j]}", real=True)
                    values[s] = float(self.cov[i, j])
                    cov_syms[i, j] = cov_syms[j, i] = s
        return sp.Matrix(mean_syms), cov_syms, values

    def _symbol_labels(self):
        if self.rank == 1:
            return ("m", "n", "I")
        return self.variable_names

    def parameter_names(self) -> dict[str, sp.Symbol]:
        """Keyword names accepted by compiled functions, mapped to their symbols."""
        _, _, values = self.symbols()
        return {_kwname(s): s for s in values}

    def __repr__(self):
        return (
            f"GaussianLowRank(rank={self.rank}, means={self.means.tolist()}, "
            f"cov={self.cov.tolist()}, phi={self.phi.name!r})"
        )


def _kwname(symbol: sp.Symbol) -> str:
    """Python keyword for a parameter symbol: ``Sigma_mn`` -> ``Smn``, ``M_m`` -> ``Mm``."""
    head, _, tail = symbol.name.partition("_")
    return ("S" if head == "Sigma" else head) + tail


def RankOne(
    Mm: float,
    Mn: float,
    Sm: float,
    Sn: float,
    Smn: float = 0.0,
    MI: float = 0.0,
    SmI: float = 0.0,
    SnI: float = 0.0,
    SI: float = 0.0,
    phi: Union[str, sp.Expr, TransferFunction] = "tanh",
) -> GaussianLowRank:
    """The unit-rank parameterisation of Mastrogiuseppe & Ostojic (2018).

    Parameters
    ----------
    Mm, Mn, MI : float
        Means of m, n and of the input I.
    Sm, Sn, SI : float
        Standard deviations (>= 0) of m, n and I.
    Smn, SmI, SnI : float
        Covariances Cov(m, n), Cov(m, I), Cov(n, I). The authors' input-driven scripts
        call Cov(n, I) ``Sini``; their total input std ``sqrt((Sini/Sin)**2 + Sip**2)`` is SI.
    phi : str, sympy.Expr or TransferFunction, default "tanh"

    Returns
    -------
    GaussianLowRank
        With ``rank=1``; its parameter keywords are the names above.

    Examples
    --------
    >>> import dmftools as dmf
    >>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    >>> float(net.overlap[0, 0])
    2.2
    """
    for name, value in dict(Mm=Mm, Mn=Mn, Sm=Sm, Sn=Sn, Smn=Smn, MI=MI, SmI=SmI, SnI=SnI, SI=SI).items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name}: must be finite, got {value}")
    for name, value in dict(Sm=Sm, Sn=Sn, SI=SI).items():
        if value < 0:
            raise ValueError(f"{name}: a standard deviation must be >= 0, got {value}")
    cov = np.array(
        [[Sm**2, Smn, SmI], [Smn, Sn**2, SnI], [SmI, SnI, SI**2]],
        dtype=float,
    )
    eig = np.linalg.eigvalsh(cov)
    if eig.min() < -1e-10 * max(1.0, eig.max()):
        raise ValueError(
            "Smn, SmI, SnI: these covariances are not compatible with the standard deviations "
            f"Sm={Sm}, Sn={Sn}, SI={SI} (covariance not positive semi-definite)"
        )
    return GaussianLowRank(rank=1, means=[Mm, Mn, MI], cov=cov, phi=transfer_function(phi))


ModelLike = Union[GaussianLowRank, Mapping]
