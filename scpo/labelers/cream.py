"""`labeler: cream` (CREAM, Wang et al. ICLR 2025, github Raibows/CREAM): rewards regularised by their consistency.

The current reward is the implicit DPO reward of M_t (see implicit.py); the previous iteration's
model ranks the same responses by r_{t-1}(y) = log pi_{t-1}(y|x) - log pi_{t-2}(y|x)
(`previous_reference_model`), or by log pi_{t-1}(y|x) / |y| when M_{t-1} is M_0. Pair: argmax vs
argmin of the current rewards, carrying C = (Kendall tau + 1) / 2 between the two rankings of the
prompt's responses (`consistency_metric: spearman` as an option; scpo/consistency.py), the soft
label of `loss: cream`. At t = 0 there is no previous model: C = 1 (plain DPO).
"""

from __future__ import annotations

from dataclasses import dataclass

from scpo.consistency import CORRELATIONS, mean_and_std
from scpo.core.errors import ScpoError
from scpo.labelers._base import Choice
from scpo.labelers._internal import InternalRewardLabeler
from scpo.labelers.implicit import ImplicitSettings
from scpo.reward_pairs import reward_pick


@dataclass
class CreamSettings(ImplicitSettings):  # CREAM's reward is the implicit one
    consistency_metric: str = "kendall"  # or spearman

    def __post_init__(self):
        super().__post_init__()
        if self.consistency_metric not in CORRELATIONS:
            raise ScpoError(
                f"setting consistency_metric={self.consistency_metric!r}: expected one of {sorted(CORRELATIONS)}"
            )


class Cream(InternalRewardLabeler):
    name = "cream"
    settings = CreamSettings
    signals = ("implicit",)
    previous_reward = True
    reference_models = 2  # M_{t-1} and M_{t-2}

    def pick_rewards(self, prompt_rows: list[dict]):
        previous = (
            [r.get("previous_reward") for r in prompt_rows]
            if any(r.get("previous_reward") is not None for r in prompt_rows)
            else None
        )
        return reward_pick(
            [r.get("reward") for r in prompt_rows],
            self.s.seed,
            prompt_rows[0]["id"],
            previous=previous,
            metric=self.s.consistency_metric,
        )

    def pair_columns(self, picked) -> dict:
        # No previous model (t = 0): the labels are trusted as they are, C = 1 (plain DPO).
        return {"consistency": 1.0 if picked.consistency is None else picked.consistency}

    def finish(self, pairs: list[dict], choices: list[Choice], counts: dict) -> list[dict]:
        pairs = super().finish(pairs, choices, counts)
        if pairs:
            mean, std = mean_and_std([p["consistency"] for p in pairs])
            counts.update(
                consistency_mean=round(mean, 4),
                consistency_std=round(std, 4),
                consistency_metric=self.s.consistency_metric,
                consistency_from_previous=any(c.extra.consistency is not None for c in choices),
            )
        return pairs
