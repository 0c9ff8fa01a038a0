"""`loss: irpo` (Pang et al. 2024, arXiv 2404.19733): l = -log sigmoid(beta * D) - alpha * log pi(y+|x) / |y+|.

ScPO's IRPO baseline: the weighted ScPO loss with w = 1 on (correct, incorrect) gold pairs.
"""

from __future__ import annotations

from scpo.losses._base import NllSettings, PairLoss, length_normalised_nll, preference_terms


class Irpo(PairLoss):
    name = "irpo"
    settings = NllSettings

    def __call__(
        self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths, *, beta, **columns
    ):
        _, preference = preference_terms(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
        return preference + self.s.alpha * length_normalised_nll(chosen_logps, chosen_lengths)
