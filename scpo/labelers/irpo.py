"""`labeler: irpo` (Iterative Reasoning Preference Optimization, Pang et al. 2024, arXiv 2404.19733 §2): gold
pairs, K per problem.

Each sample is labelled correct or not against the problem's gold answer (the votes labeler's labels). For a
problem, the winning set G^w holds its correct samples and the losing set G^l its wrong ones; "we simply iterate
over G^w_i and G^l_i simultaneously to produce K pairs" (footnote 2: "If the iteration reaches the end of a set,
it restarts from the first element. If one of the sets is empty, then that input will be ignored"), K =
`irpo_pairs_per_problem` (GSM8K: K = 10, with N = 30 samples). "Since some problems might not have any
model-generated correct solution, we include the gold human written solution (c_i, y_i) in the winning set G^w_i
so it is not empty" (`irpo_gold_rationale`; added only where G^w would be empty, the purpose the quote gives: the
paper does not say whether it joins non-empty sets too; the problems' `solution` field, written by `scpo data` for GSM8K and
MATH). Weight 1; train with `loss: irpo` (Eq. 1). Pairs with the gold rationale have no sampler log-probs for
it, so such a file trains with TRL's reference pass.

ScPO's own "IRPO Gold" baseline (one (correct, incorrect) pair per problem from k = 8 samples, w = 1) is the votes
labeler with `mode: supervised` and `loss: irpo`.
"""

from __future__ import annotations

from dataclasses import dataclass

from scpo.core.errors import ScpoError
from scpo.core.settings import Block
from scpo.labelers._base import Choice
from scpo.labelers.votes import Votes


@dataclass
class IrpoSettings(Block):
    irpo_pairs_per_problem: int = 10  # K: Pang et al. §2.2, GSM8K (MATH: 15, ARC: 20)
    irpo_gold_rationale: bool = True  # a problem without a correct sample gets its gold solution as the winner

    def __post_init__(self):
        super().__post_init__()
        if self.irpo_pairs_per_problem < 1:
            raise ScpoError(f"setting irpo_pairs_per_problem={self.irpo_pairs_per_problem}: must be >= 1")


def irpo_pairs(winners: list[int], losers: list[int], k: int) -> list[tuple[int, int]]:
    """Pang et al.'s pairing: walk both sets at once, each restarting at its end, for K pairs; none if a set is empty."""
    if not winners or not losers:
        return []
    return [(winners[i % len(winners)], losers[i % len(losers)]) for i in range(k)]


class Irpo(Votes):
    name = "irpo"
    settings = IrpoSettings

    def pairs_config(self) -> dict:
        return {
            **super().pairs_config(),
            "irpo_pairs_per_problem": self.s.irpo_pairs_per_problem,
            "irpo_gold_rationale": self.s.irpo_gold_rationale,
        }

    def pick(self, prompt_rows: list[dict]) -> list[Choice] | str:
        if prompt_rows[0].get("correct") is None:
            return "no_gold"
        winners = [i for i, r in enumerate(prompt_rows) if r["correct"]]
        losers = [i for i, r in enumerate(prompt_rows) if not r["correct"]]
        if not losers:
            return "no_incorrect"
        solution = next((r.get("solution") for r in prompt_rows if r.get("solution")), None)
        if not winners and self.s.irpo_gold_rationale and solution:
            prompt_rows.append(
                {
                    **{k: v for k, v in prompt_rows[0].items() if k in ("id", "prompt", "messages")},
                    "completion": solution,
                    "correct": True,
                    "answer": None,
                    "gold_rationale": True,
                }
            )
            winners = [len(prompt_rows) - 1]
        pairs = irpo_pairs(winners, losers, self.s.irpo_pairs_per_problem)
        if not pairs:
            return "no_correct"
        return [
            Choice(
                c,
                r,
                {
                    "weight": 1.0,
                    "chosen_answer": prompt_rows[c].get("answer"),
                    "rejected_answer": prompt_rows[r].get("answer"),
                    "source": "gold",
                    "gold_rationale": bool(prompt_rows[c].get("gold_rationale")),
                },
            )
            for c, r in pairs
        ]
