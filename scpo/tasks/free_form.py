"""`task: free_form`: a prompt with no final answer to extract (explanations, summaries, open instructions).

It only formats the prompt (the problem, then `instruction` if any, in a chat turn). `extract` finds nothing, so
answer votes have nothing to count: label such samples with `labeler: semantic` (soft votes by meaning), `judge` or
`implicit`, and train GRPO with `reward_funcs: [semantic_voting]`. `scpo eval` runs on it (a held-out file needs a
`gold` column: put the reference answer there) but grades nothing (accuracy 0, no answer anywhere); what eval
writes, every completion in eval_samples.jsonl, is what a similarity to the references is measured on
(benchmarks/reference_similarity.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from scpo.tasks._base import Task


@dataclass
class FreeForm(Task):
    name: str = "free_form"
    keys_are_exact: bool = True

    def extract(self, completion: str) -> str | None:
        return None  # no final answer: nothing votes, nothing is graded
