"""What a pair loss is: per-pair preference losses from sequence log-probs (sums over completion tokens).

A loss file declares the per-pair columns it reads (`columns`: weight, consistency, ...; checked
when the pairs file is loaded and carried through TRL's collator), its settings block, and
computes the loss of each pair; the trainer averages them. `uses_trl_loss` marks TRL's own DPO
loss (then TRL computes it, with all of TRL's loss options).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from scpo.core.errors import ScpoError
from scpo.core.settings import Block


@dataclass
class NllSettings(Block):
    alpha: float = 1.0  # weight of the length-normalised NLL term (scpo, irpo)


class PairLoss:
    name: ClassVar[str]
    settings: ClassVar[type | None] = None
    columns: ClassVar[tuple[str, ...]] = ()  # per-pair float columns of the pairs file it reads
    uses_trl_loss: ClassVar[bool] = False

    def __init__(self, settings=None):
        self.s = settings

    def check_rows(self, rows: list[dict], path: str) -> None:
        """Named errors for pairs this loss cannot train on (before any process or model starts)."""
        for column in self.columns:
            if any(not isinstance(r.get(column), (int, float)) or isinstance(r.get(column), bool) for r in rows):
                raise ScpoError(f"{path}: the {self.name} loss needs a numeric {column!r} column in every row")

    def prepare(self, dataset):
        """The training dataset as this loss wants it (a column averaged, ...); as it is by default."""
        return dataset

    def __call__(
        self,
        chosen_logps,
        rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        chosen_lengths,
        *,
        beta: float,
        **columns,
    ):
        """The loss of each pair (shape [batch])."""
        raise NotImplementedError


def preference_terms(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta: float):
    """(D, -log sigmoid(beta * D)) with D the DPO margin [log pi(y+) - log pi_ref(y+)] - [log pi(y-) - log pi_ref(y-)]."""
    import torch.nn.functional as F

    margin = (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)
    return margin, -F.logsigmoid(beta * margin)


def length_normalised_nll(chosen_logps, chosen_lengths):
    """-log pi(y+|x) / |y+|: the NLL term of IRPO and ScPO."""
    return -chosen_logps / chosen_lengths.clamp(min=1).to(chosen_logps.dtype)
