"""`semantic_voting`: each rollout's soft vote among its group (Semantic Voting, arXiv 2509.23067; code
rubickkcibur/Semantic-Voting, src/open_r1/my_rewards.py:56-128, its `cluster_score` GRPO reward).

A group's rollouts are embedded (the packaged all-MiniLM-L6-v2 by default; `semantic_similarity: lexical` for
Jain et al.'s n-gram overlap) and each gets its soft vote on [0, 1]: (1 + cos(e_i, mean e)) / 2, as the reference's
0.5 + 0.5 x cosine (my_rewards.py:127). As the reference: a rollout without a text to compare (with `semantic_text:
answer`, no parsed answer) gets 0.0 (my_rewards.py:126-127), and a group with fewer than `semantic_min_responses`
scored rollouts (5, my_rewards.py:82-83) gets None for every rollout (no reward, left out of TRL's group
statistics). The reference scores a whole reward call's completions together; scpo scores each prompt's group
(every process's rollouts of it), the group GRPO normalizes over. The reference's HDBSCAN step is not implemented
(scpo/soft_votes.py says why). Works for any task: with `semantic_text: completion` no answer is extracted.
"""

from __future__ import annotations

from scpo.core.errors import ScpoError
from scpo.rewards._base import Reward
from scpo.semantic import SemanticSettings, SoftVoter


class SemanticVoting(Reward):
    name = "semantic_voting"
    settings = SemanticSettings

    def __init__(self, settings=None):
        super().__init__(settings if settings is not None else SemanticSettings())
        s = self.s
        n_votes = getattr(s, "n_votes", None)
        if n_votes is not None and n_votes < s.semantic_min_responses:
            raise ScpoError(
                f"settings n_votes={n_votes} and semantic_min_responses={s.semantic_min_responses}: every "
                "group would have too few rollouts for a soft vote, and semantic_voting would give no "
                "reward; raise n_votes or lower semantic_min_responses"
            )
        self.voter = SoftVoter(s)  # the encoder is found and checked (fetched once) before any rollout

    def __call__(self, batch) -> list[float | None]:
        if batch.group_texts is None:
            raise ScpoError(
                "semantic_voting needs every group's rollout texts (RolloutBatch.group_texts); scpo's "
                "GroupVoter passes them"
            )
        texts = batch.group_texts if self.s.semantic_text == "completion" else batch.group_answers
        votes = self.voter.votes(texts)
        minimum = self.s.semantic_min_responses

        def rewards(i, group):
            scored = sum(v is not None for v in votes[i])
            if scored < minimum:
                return [None] * len(votes[i])
            return [0.0 if v is None else v for v in votes[i]]

        return batch.per_group(rewards)
