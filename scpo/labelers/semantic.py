"""`labeler: semantic`: soft votes by meaning (Semantic Voting, Jiang et al., ICLR 2026, arXiv 2509.23067).

For tasks whose responses have no final answer to vote on (explanations, summaries, translations) and for any
other: each sample's soft vote is its agreement with the prompt's samples, from sentence embeddings (the packaged
all-MiniLM-L6-v2 by default) or n-gram overlap (Jain et al. 2023); the pair is (highest, lowest) soft vote, as the
reference's DPO data (src/SRLM/cluster_score.py:175-185). The rules, their sources and scpo's choices:
scpo/soft_votes.py; the settings: scpo/semantic.py. No gold is read; where a prompt has gold and the task can
grade it, rows get `correct` for reporting only.

Labels rows: the sample rows plus `labeler` ("semantic"), `soft_vote` (on [0, 1]; None: not scored) and
`num_scored`. Pairs rows: TRL's prompt / chosen / rejected, `weight`, `source` ("semantic"), `chosen_vote`,
`rejected_vote`, `num_scored`, and the sampler's reference columns as for vote pairs.
"""

from __future__ import annotations

import sys

from scpo.core.errors import ScpoError
from scpo.core.rows import SAMPLE_FIELDS, group_by_prompt
from scpo.labelers._base import Choice, Labeler, LabelFiles, gold_correctness
from scpo.semantic import SemanticSettings, SoftVoter, votes_config
from scpo.soft_votes import pick_soft


class Semantic(Labeler):
    name = "semantic"
    settings = SemanticSettings
    label_fields = {**SAMPLE_FIELDS, "labeler": str}

    def __init__(self, settings, task):
        super().__init__(settings, task)
        self.rule = settings.soft_vote_rule()
        self._voter = None

    @classmethod
    def check_recipe(cls, argv: list[str]) -> None:
        from scpo.core.blocks import StageBlock
        from scpo.core.encoders import check_encoder_setting
        from scpo.core.settings import compose, parse_settings

        s = parse_settings(compose("SemanticRecipe", (StageBlock, SemanticSettings)), argv)
        if s.semantic_similarity == "embedding":
            check_encoder_setting(s.semantic_model)

    @property
    def voter(self) -> SoftVoter:
        if self._voter is None:  # the encoder is fetched (once) when labels are made, never by `scpo pairs`
            self._voter = SoftVoter(self.s)
        return self._voter

    def text_of(self, row: dict) -> str | None:
        if self.s.semantic_text == "completion":
            return row["completion"]
        return self.task.vote_answer(row["completion"], row.get("finish_reason") == "length")

    def label_config(self) -> dict:
        return {"labeler": self.name, "task": self.s.task, "task_options": self.s.task_options, **votes_config(self.s)}

    def label(self, rows: list[dict], files: LabelFiles) -> tuple[list[dict], dict]:
        by_prompt = group_by_prompt([{**row, "_i": i} for i, row in enumerate(rows)])
        groups = list(by_prompt.values())
        try:
            votes = self.voter.votes([[self.text_of(r) for r in group] for group in groups])
        except ScpoError as e:
            raise ScpoError(f"{files.samples}: {e}") from None
        vote_of, scored_of = [None] * len(rows), [0] * len(rows)
        for group, group_votes in zip(groups, votes):
            scored = sum(v is not None for v in group_votes)
            for r, v in zip(group, group_votes):
                vote_of[r["_i"]], scored_of[r["_i"]] = v, scored
        correct = gold_correctness(rows, self.task)
        out = []
        for i, row in enumerate(rows):
            labeled = {**row, "labeler": self.name, "soft_vote": vote_of[i], "num_scored": scored_of[i]}
            if correct[i] is not None:
                labeled["correct"] = correct[i]
            out.append(labeled)
        scored = [v for v in vote_of if v is not None]
        counts = {
            "labeler": self.name,
            "prompts": len(groups),
            "completions": len(rows),
            "unscored_completions": len(rows) - len(scored),
            "mean_soft_vote": round(sum(scored) / len(scored), 4) if scored else None,
            "similarity": self.s.semantic_similarity,
            "score": self.s.score(),
        }
        if self.voter.embedded:
            counts["embedded_per_second"] = round(self.voter.embedded / max(self.voter.embed_seconds, 1e-9), 1)
        too_few = sum(sum(v is not None for v in g) < self.rule.min_responses for g in votes)
        if too_few:
            print(
                f"[label] {too_few} prompt(s) have fewer than semantic_min_responses={self.rule.min_responses} "
                "scored samples; they give no pair",
                file=sys.stderr,
            )
        return out, counts

    def pairs_config(self) -> dict:
        s = self.s
        return {
            "labeler": self.name,
            "semantic_tau": s.semantic_tau,
            "semantic_weighting": s.semantic_weighting,
            "semantic_min_responses": s.semantic_min_responses,
            "task": s.task,
            "task_options": s.task_options,
        }

    def check(self, prompt_rows: list[dict]) -> None:
        labelers = {r.get("labeler") for r in prompt_rows}
        if labelers != {self.name}:
            raise ScpoError(
                f"prompt {prompt_rows[0]['id']!r}: labels made by {sorted(map(str, labelers))}, not by "
                f"labeler={self.name}; run scpo label with --labeler {self.name}"
            )

    def pick(self, prompt_rows: list[dict]) -> Choice | str:
        picked = pick_soft([r.get("soft_vote") for r in prompt_rows], self.rule)
        if isinstance(picked, str):
            return picked
        return Choice(
            picked.chosen,
            picked.rejected,
            {
                "weight": picked.weight,
                "source": self.name,
                "chosen_vote": picked.chosen_vote,
                "rejected_vote": picked.rejected_vote,
                "num_scored": picked.scored,
            },
        )

    def finish(self, pairs: list[dict], choices: list[Choice], counts: dict) -> list[dict]:
        if pairs:
            counts["mean_vote_gap"] = round(sum(p["chosen_vote"] - p["rejected_vote"] for p in pairs) / len(pairs), 4)
        return pairs

    def no_pairs_advice(self, counts: dict) -> str:
        advice = {
            "too_few_scored": f"fewer than semantic_min_responses={self.rule.min_responses} scored samples: raise k "
            "(or, with semantic_text: answer, check the answer format)",
            "tie": "every sample had the same soft vote (identical samples): raise the sampling temperature",
            "below_tau": f"the chosen soft vote was below semantic_tau={self.rule.tau}: lower it",
        }
        skipped = sorted(dict(counts.get("skipped", {})).items(), key=lambda kv: -kv[1])
        return (
            "; ".join(f"{n} prompts: {advice.get(reason, reason)}" for reason, n in skipped)
            or "the labels file has no prompt"
        )
