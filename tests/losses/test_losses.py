"""The published losses on fixed log-probs, against hand computation; zero weight means zero gradient."""

from __future__ import annotations

import math

import pytest
import torch

from scpo.core.errors import ScpoError
from scpo.losses import pair_losses

BETA, ALPHA = 0.5, 1.0
# Two pairs: sequence log-probs under the policy and the reference, and chosen lengths in tokens.
POLICY_C, POLICY_R = [-10.0, -4.0], [-12.0, -3.0]
REF_C, REF_R = [-11.0, -4.5], [-11.5, -2.0]
LENGTHS = [5, 2]


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def _hand(i: int, w: float = 1.0, c: float | None = None, nll: bool = True) -> float:
    margin = (POLICY_C[i] - REF_C[i]) - (POLICY_R[i] - REF_R[i])
    if c is not None:
        return -c * _log_sigmoid(BETA * margin) - (1 - c) * _log_sigmoid(-BETA * margin)
    value = -w * _log_sigmoid(BETA * margin)
    if nll:
        value += ALPHA * w * (-POLICY_C[i] / LENGTHS[i])
    return value


def _losses(name: str, weights=None, consistency=None, policy_c=None):
    t = lambda xs: torch.tensor(xs, dtype=torch.float64)  # noqa: E731
    return pair_losses(
        name,
        policy_c if policy_c is not None else t(POLICY_C),
        t(POLICY_R),
        t(REF_C),
        t(REF_R),
        torch.tensor(LENGTHS),
        beta=BETA,
        alpha=ALPHA,
        weights=None if weights is None else t(weights),
        consistency=None if consistency is None else t(consistency),
    )


def test_dpo_equals_hand_computation():
    got = _losses("dpo")
    assert got.tolist() == pytest.approx([_hand(0, nll=False), _hand(1, nll=False)], abs=1e-12)


def test_scpo_equals_hand_computation():
    got = _losses("scpo", weights=[0.75, 0.25])
    assert got.tolist() == pytest.approx([_hand(0, w=0.75), _hand(1, w=0.25)], abs=1e-12)
    # margin of pair 0 is (1) - (-0.5) = 1.5: -0.75*log(sigmoid(0.75)) + 0.75*10/5
    assert got[0].item() == pytest.approx(0.75 * math.log1p(math.exp(-0.75)) + 0.75 * 2.0, abs=1e-12)


def test_irpo_is_scpo_with_unit_weights():
    assert torch.allclose(_losses("irpo"), _losses("scpo", weights=[1.0, 1.0]))
    assert _losses("irpo").tolist() == pytest.approx([_hand(0), _hand(1)], abs=1e-12)


def test_cream_soft_label_loss():
    got = _losses("cream", consistency=[1.0, 0.3])
    assert got.tolist() == pytest.approx([_hand(0, c=1.0), _hand(1, c=0.3)], abs=1e-12)
    # C = 1 is plain DPO; C = 0.5 is symmetric in the margin.
    assert got[0].item() == pytest.approx(_losses("dpo")[0].item())


def test_zero_weight_pair_contributes_zero_gradient():
    policy_c = torch.tensor(POLICY_C, dtype=torch.float64, requires_grad=True)
    _losses("scpo", weights=[0.0, 0.5], policy_c=policy_c).mean().backward()
    assert policy_c.grad[0].item() == 0.0
    assert policy_c.grad[1].item() != 0.0


def test_missing_columns_are_clear_errors():
    with pytest.raises(ValueError, match="weight"):
        _losses("scpo")
    with pytest.raises(ValueError, match="consistency"):
        _losses("cream")
    with pytest.raises(ScpoError, match="unknown loss"):
        _losses("kto")
