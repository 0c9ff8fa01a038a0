"""`labeler: scir` (SCIR, Zhou et al. 2025, arXiv 2502.08922): pairs on which the model's internal rewards agree.

Two internal reward models of the same LLM, its LLM-as-a-judge (judge.py) and its implicit DPO
reward (implicit.py), each give a Bradley-Terry preference probability for the candidate pair,
P(chosen > rejected) = sigmoid(diff / `scir_scales`[signal]); the first of `scir_rewards` picks the
candidate (max vs min), and the pair is kept only when every signal gives P >= `scir_threshold`
(and > 0.5). Only responses every signal scored are candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scpo.consistency import scir_filter
from scpo.core.errors import ScpoError
from scpo.labelers._base import Choice
from scpo.labelers._internal import SIGNAL_COLUMNS, InternalRewardLabeler
from scpo.labelers.implicit import ImplicitSettings
from scpo.labelers.judge import JudgeSettings
from scpo.reward_pairs import REWARD_SIGNALS, reward_pick


@dataclass
class ScirSettings(JudgeSettings, ImplicitSettings):  # SCIR's rewards are the judge's and the implicit one
    scir_rewards: list[str] = field(default_factory=lambda: ["judge", "implicit"])  # the first picks the pair
    scir_threshold: float = 0.5  # keep a pair when every signal gives P(chosen > rejected) >= this (and > 0.5)
    scir_scales: dict = field(default_factory=lambda: {"judge": 1.0, "implicit": 10.0})  # P = sigmoid(diff / scale)

    def __post_init__(self):
        super().__post_init__()
        unknown = [r for r in self.scir_rewards if r not in REWARD_SIGNALS]
        if unknown or (getattr(self, "labeler", None) == "scir" and len(self.scir_rewards) < 2):
            raise ScpoError(f"setting scir_rewards={self.scir_rewards}: expected two or more of {REWARD_SIGNALS}")
        if not 0 <= self.scir_threshold < 1:
            raise ScpoError(f"setting scir_threshold={self.scir_threshold}: must be in [0, 1)")
        if any(not isinstance(v, (int, float)) or v <= 0 for v in self.scir_scales.values()):
            raise ScpoError(f"setting scir_scales={self.scir_scales}: every scale must be a number > 0")


class Scir(InternalRewardLabeler):
    name = "scir"
    settings = ScirSettings
    signals = ("judge", "implicit")
    needs_gpu = True  # its judge runs on a vLLM engine
    shardable = True
    reference_models = 1  # M_{t-1}, for the implicit reward

    @property
    def primary(self) -> str:
        return self.s.scir_rewards[0]

    def pick_rewards(self, prompt_rows: list[dict]):
        signals = {name: [r.get(SIGNAL_COLUMNS[name]) for r in prompt_rows] for name in self.s.scir_rewards}
        return reward_pick(
            [r.get("reward") for r in prompt_rows],
            self.s.seed,
            prompt_rows[0]["id"],
            signals=signals,
            scales=self.s.scir_scales,
        )

    def pair_columns(self, picked) -> dict:
        return {f"p_{name}": p for name, p in picked.probabilities.items()}

    def keep(self, pairs: list[dict], choices: list[Choice], counts: dict) -> list[dict]:
        candidates = [{"pair": p, "probabilities": c.extra.probabilities} for p, c in zip(pairs, choices)]
        kept, rate = scir_filter(candidates, self.s.scir_threshold)
        counts["skipped"]["disagree"] = len(candidates) - len(kept)
        counts["agreement_rate"] = None if math.isnan(rate) else round(rate, 4)
        return [c["pair"] for c in kept]
