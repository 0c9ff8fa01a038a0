"""`loss: dpo` (Rafailov et al. 2023): l = -log sigmoid(beta * D), computed by TRL's own DPOTrainer loss.

Every TRL loss option (loss_type, label_smoothing, ...) applies; the pairs need no extra column.
"""

from __future__ import annotations

from scpo.losses._base import PairLoss, preference_terms


class Dpo(PairLoss):
    name = "dpo"
    uses_trl_loss = True

    def __call__(
        self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths, *, beta, **columns
    ):
        return preference_terms(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)[1]
