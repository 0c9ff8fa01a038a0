"""`labeler: implicit`: the DPO implicit reward r_t(y) = log pi_t(y|x) - log pi_{t-1}(y|x), token sums.

M_t is the sampler (`model`) and M_{t-1} its DPO reference (`reference_model`, the model M_t was
trained from). For M_0 (no reference) r_0(y) = log pi_0(y|x) / |y|, the length-normalised
log-likelihood. log pi_t comes from the samples rows (the sampler's raw log-probs over
`completion_token_ids`, `save_token_ids: true`); the reference's from one batched transformers
forward. Pair: max vs min reward.
"""

from __future__ import annotations

from dataclasses import dataclass

from scpo.core.settings import Block
from scpo.labelers._internal import InternalRewardLabeler


@dataclass
class ImplicitSettings(Block):
    score_batch_size: int = 8  # responses per transformers forward (implicit reward)


class Implicit(InternalRewardLabeler):
    name = "implicit"
    settings = ImplicitSettings
    signals = ("implicit",)
    reference_models = 1  # M_{t-1}
