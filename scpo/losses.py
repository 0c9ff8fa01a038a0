"""Per-pair preference losses, from sequence log-probs (sums over completion tokens). Small and exact.

  dpo    l = -log sigmoid(beta * D),  D = [log pi(y+) - log pi_ref(y+)] - [log pi(y-) - log pi_ref(y-)]
  irpo   l = -log sigmoid(beta * D) - alpha * log pi(y+) / |y+|                        (Pang et al. 2024)
  scpo   l = w * [-log sigmoid(beta * D)] - alpha * w * log pi(y+) / |y+|            (Prasad et al. 2024)
  cream  l = C * [-log sigmoid(beta * D)] + (1 - C) * [-log sigmoid(-beta * D)]     (Wang et al. 2025)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("dpo", "irpo", "scpo", "cream")


def pair_losses(loss: str, chosen_logps: torch.Tensor, rejected_logps: torch.Tensor,
                ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, chosen_lengths: torch.Tensor,
                beta: float, alpha: float = 1.0, weights: torch.Tensor | None = None,
                consistency: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of each pair (shape [batch]); the trainer averages them."""
    margin = (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)
    preference = -F.logsigmoid(beta * margin)
    if loss == "dpo":
        return preference
    if loss == "cream":
        if consistency is None:
            raise ValueError("the cream loss needs a 'consistency' column in the pairs file")
        consistency = consistency.to(margin.dtype)
        return consistency * preference + (1 - consistency) * -F.logsigmoid(-beta * margin)
    nll = -chosen_logps / chosen_lengths.clamp(min=1).to(chosen_logps.dtype)
    if loss == "irpo":
        return preference + alpha * nll
    if loss == "scpo":
        if weights is None:
            raise ValueError("the scpo loss needs a 'weight' column in the pairs file")
        weights = weights.to(margin.dtype)
        return weights * preference + alpha * weights * nll
    raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
