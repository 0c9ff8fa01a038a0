"""`loss: cream` (CREAM, Wang et al. ICLR 2025): the consistency-regularised soft-label DPO loss.

    l = C * [-log sigmoid(beta * D)] + (1 - C) * [-log sigmoid(-beta * D)]

with C the pair's `consistency` column (scpo/labelers/cream.py): C = 1 is DPO, C = 0 DPO with chosen
and rejected swapped. `cream_consistency: avg` gives every pair the dataset's mean C (CREAM's "avg"
variant) instead of its own ("dyn").
"""

from __future__ import annotations

from dataclasses import dataclass

from scpo.core.errors import ScpoError
from scpo.core.settings import Block
from scpo.losses._base import PairLoss, preference_terms


@dataclass
class CreamSettings(Block):
    cream_consistency: str = "dyn"  # cream: each pair's own C ("dyn") or the dataset mean C for every pair ("avg")

    def __post_init__(self):
        super().__post_init__()
        if self.cream_consistency not in ("dyn", "avg"):
            raise ScpoError(f"setting cream_consistency={self.cream_consistency!r}: expected dyn or avg")


def average_consistency(ds):
    """CREAM-avg: every pair gets the dataset's mean consistency C instead of its own."""
    mean = sum(ds["consistency"]) / len(ds)
    print(f"[train] cream_consistency=avg: C = {mean:.4f} for all {len(ds)} pairs")
    return ds.map(lambda row: {"consistency": mean})


class Cream(PairLoss):
    name = "cream"
    settings = CreamSettings
    columns = ("consistency",)

    def prepare(self, dataset):
        if self.s.cream_consistency == "avg":
            return average_consistency(dataset)
        return dataset

    def __call__(
        self,
        chosen_logps,
        rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        chosen_lengths,
        *,
        beta,
        consistency=None,
        **columns,
    ):
        import torch.nn.functional as F

        if consistency is None:
            raise ValueError("the cream loss needs a 'consistency' column in the pairs file")
        margin, preference = preference_terms(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
        consistency = consistency.to(margin.dtype)
        return consistency * preference + (1 - consistency) * -F.logsigmoid(-beta * margin)
