import numpy as np
import pytest
import sympy as sp

import dmftools as dmf
from dmftools.model import X


def test_rank_one_covariance_layout():
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=0.5, Sn=1.5, Smn=0.1, MI=0.3, SmI=0.05, SnI=0.2, SI=0.7)
    np.testing.assert_array_equal(net.means, [1.1, 2.0, 0.3])
    np.testing.assert_allclose(net.cov, [[0.25, 0.1, 0.05], [0.1, 2.25, 0.2], [0.05, 0.2, 0.49]])
    assert net.overlap[0, 0] == pytest.approx(1.1 * 2.0 + 0.1)
    assert set(net.parameter_names()) == {"Mm", "Mn", "Sm", "Sn", "Smn", "MI", "SmI", "SnI", "SI"}


def test_zero_parameters_are_structural_zeros():
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    assert set(net.parameter_names()) == {"Mm", "Mn", "Sm", "Sn"}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(Sm=-1.0), "Sm"),
        (dict(Sn=float("nan")), "Sn"),
        (dict(Mm=float("inf")), "Mm"),
        (dict(Smn=5.0), "Smn"),  # |Cov(m, n)| > Sm * Sn is not PSD
        (dict(SI=-0.1), "SI"),
    ],
)
def test_rank_one_rejects_bad_values(kwargs, field):
    base = dict(Mm=1.0, Mn=1.0, Sm=1.0, Sn=1.0)
    base.update(kwargs)
    with pytest.raises(ValueError, match=field):
        dmf.RankOne(**base)


def test_rank_one_rejects_non_numbers():
    with pytest.raises(TypeError, match="Mm"):
        dmf.RankOne(Mm="1", Mn=1.0, Sm=1.0, Sn=1.0)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(rank=0), "rank"),
        (dict(means=[0, 0, 0]), "means"),
        (dict(cov=np.eye(3)), "cov"),
        (dict(means=[0, 0, 0, 0, np.nan]), "means"),
        (dict(cov=np.diag([1, 1, -1, 1, 1.0])), "cov"),
        (dict(cov=np.triu(np.ones((5, 5)))), "symmetric"),
        (dict(cov=np.eye(5) + 2 * (np.eye(5, k=1) + np.eye(5, k=-1))), "positive semi-definite"),
    ],
)
def test_gaussian_low_rank_validation(kwargs, field):
    base = dict(rank=2, means=np.zeros(5), cov=np.eye(5))
    base.update(kwargs)
    with pytest.raises(ValueError, match=field):
        dmf.GaussianLowRank(**base)


def test_rank_must_be_integer():
    with pytest.raises(TypeError, match="rank"):
        dmf.GaussianLowRank(rank=1.5, means=np.zeros(3), cov=np.eye(3))


def test_transfer_functions():
    assert dmf.transfer_function("tanh").expr == sp.tanh(X)
    erf = dmf.transfer_function("erf")
    assert sp.diff(erf.expr, X).subs(X, 0) == 1  # same slope at 0 as tanh
    sig = dmf.transfer_function("sigmoid")
    assert sp.simplify((sig.expr - 1 / (1 + sp.exp(-X))).rewrite(sp.exp)) == 0
    for tf in map(dmf.transfer_function, ("tanh", "erf", "sigmoid")):
        assert sp.simplify(sp.diff(tf.get_primitive(), X) - tf.expr) == 0
    user = dmf.transfer_function(sp.Symbol("x") ** 3 / 3)
    assert sp.diff(user.get_primitive(), X) == X**3 / 3
    with pytest.raises(ValueError, match="phi"):
        dmf.transfer_function("relu6")
    with pytest.raises(ValueError, match="only on x"):
        dmf.transfer_function(sp.Symbol("y") * X)
    with pytest.raises(TypeError, match="phi"):
        dmf.transfer_function(3)
