"""Pair losses, a registry: `loss: <name>` is scpo/losses/<name>.py (or a dotted path to a PairLoss subclass).

dpo    l = -log sigmoid(beta * D),  D = [log pi(y+) - log pi_ref(y+)] - [log pi(y-) - log pi_ref(y-)]
irpo   l = -log sigmoid(beta * D) - alpha * log pi(y+) / |y+|                        (Pang et al. 2024)
scpo   l = w * [-log sigmoid(beta * D)] - alpha * w * log pi(y+) / |y+|            (Prasad et al. 2024)
cream  l = C * [-log sigmoid(beta * D)] + (1 - C) * [-log sigmoid(-beta * D)]     (Wang et al. 2025)
"""

from __future__ import annotations

from scpo.core.registry import Registry
from scpo.losses._base import PairLoss

LOSSES: Registry = Registry("loss", __name__, PairLoss)


def pair_losses(
    loss: str,
    chosen_logps,
    rejected_logps,
    ref_chosen_logps,
    ref_rejected_logps,
    chosen_lengths,
    beta: float,
    alpha: float = 1.0,
    weights=None,
    consistency=None,
):
    """The loss of each pair (shape [batch]) by loss name, with alpha given directly (for tests and benchmarks)."""
    from types import SimpleNamespace

    cls = LOSSES.get(loss)
    columns = {k: v for k, v in (("weight", weights), ("consistency", consistency)) if v is not None}
    return cls(SimpleNamespace(alpha=alpha, cream_consistency="dyn"))(
        chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths, beta=beta, **columns
    )


__all__ = ["LOSSES", "PairLoss", "pair_losses"]
