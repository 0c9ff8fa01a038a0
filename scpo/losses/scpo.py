"""`loss: scpo` (Prasad et al. 2024, arXiv 2411.04109, Eq. 2): the weighted IRPO loss.

    l = w * [-log sigmoid(beta * D)] - alpha * w * log pi(y+|x) / |y+|,   w = (V(y+) - V(y-)) / k

from the pairs file's `weight` column (in [0, 1]; a pair of equal votes has w = 0 and no gradient).
"""

from __future__ import annotations

from scpo.core.errors import ScpoError
from scpo.losses._base import NllSettings, PairLoss, length_normalised_nll, preference_terms


class Scpo(PairLoss):
    name = "scpo"
    settings = NllSettings
    columns = ("weight",)

    def check_rows(self, rows: list[dict], path: str) -> None:
        for i, row in enumerate(rows, 1):
            w = row.get("weight")
            if not isinstance(w, (int, float)) or isinstance(w, bool):
                raise ScpoError(f"{path}:{i}: the scpo loss needs a numeric 'weight' (got {w!r})")
            if not 0 <= w <= 1:
                raise ScpoError(f"{path}:{i}: weight {w} is outside [0, 1]")
        if not any(row["weight"] > 0 for row in rows):
            raise ScpoError(
                f"{path}: every pair has weight 0 (all votes tied): nothing to learn; "
                "lower tau or sample more completions per prompt"
            )

    def __call__(
        self,
        chosen_logps,
        rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        chosen_lengths,
        *,
        beta,
        weight=None,
        **columns,
    ):
        if weight is None:
            raise ValueError("the scpo loss needs a 'weight' column in the pairs file")
        margin, preference = preference_terms(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
        weight = weight.to(margin.dtype)
        return weight * preference + self.s.alpha * weight * length_normalised_nll(chosen_logps, chosen_lengths)
