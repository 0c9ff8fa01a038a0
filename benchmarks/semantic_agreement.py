"""Semantic votes against answer votes where both exist: agreement, and each rule's label accuracy against gold.

    python benchmarks/semantic_agreement.py --samples FILE [FILE ...] --task gsm8k [--similarity embedding]

Reads samples files (read-only) whose prompts have gold answers. Per prompt: the answer votes (`labeler: votes`,
scpo/labelers/votes.py) give the majority answer (the most-voted group; a tie goes as scpo/voting.py orders groups) and ScPO's pair
(tau 0.5); the soft votes (`labeler: semantic`, on the whole completions, nothing extracted) give the semantic
chosen / rejected. Printed, with standard errors over prompts (`--cluster_by id_prefix` for the CPU demo's four
wordings of a fact):
- agreement: the answer of the response with the highest soft vote (the semantic label, given even when all votes
  tie and no pair is made) is the majority answer (prompts with a majority answer and enough scored responses);
- label accuracy: the majority answer is gold's; the semantic label's answer is gold's (all prompts; a prompt
  without a label counts as wrong for both rules);
- on the prompts ScPO keeps (V+ >= k/2): chosen accuracy of each rule, rejected accuracy (lower is better), and
  how often the pair is (correct, wrong).
Gold is used only to measure; neither rule reads it.
"""

from __future__ import annotations

import argparse
import json

from scpo.core.io import read_rows
from scpo.core.rows import SAMPLE_FIELDS, group_by_prompt
from scpo.labelers.votes import label_prompt, votes_from_labels
from scpo.metrics import cluster_key, mean_and_stderr
from scpo.pairs import PairRule, pick_by_votes
from scpo.semantic import SemanticSettings, SoftVoter
from scpo.soft_votes import SoftVoteRule, pick_soft
from scpo.tasks import get_task


def measure(path: str, task_name: str, voter: SoftVoter, rule: SoftVoteRule, cluster_by: str) -> dict:
    task = get_task(task_name)
    prompts = [
        rows
        for rows in group_by_prompt(read_rows(path, required=SAMPLE_FIELDS)).values()
        if rows[0].get("gold") is not None
    ]
    labeled = [label_prompt(rows, task) for rows in prompts]
    soft = voter.votes([[r["completion"] for r in rows] for rows in prompts])
    scpo_rule = PairRule(tau=0.5)  # ScPO's M_1 threshold
    out: dict[str, list] = {
        k: []
        for k in (
            "agreement",
            "majority_accuracy",
            "semantic_accuracy",
            "scpo_chosen",
            "semantic_chosen",
            "scpo_rejected",
            "semantic_rejected",
            "scpo_pair",
            "semantic_pair",
        )
    }
    units: dict[str, list] = {k: [] for k in out}
    for rows, prompt_votes in zip(labeled, soft):
        unit = cluster_key(rows[0], cluster_by)
        majority = [r for r in rows if r["answer_group"] == 0]  # group 0: the most votes (scpo/voting.py's order)
        picked = pick_soft(prompt_votes, rule)

        def add(key, value, unit=unit):
            out[key].append(float(value))
            units[key].append(unit)

        # the semantic label: the highest soft vote (the first at it), whether or not the prompt gives a pair
        # (identical samples tie: no pair, but their common answer is still the label)
        scored = [i for i, v in enumerate(prompt_votes) if v is not None]
        top = max(scored, key=lambda i: prompt_votes[i]) if len(scored) >= rule.min_responses else None
        label_row = rows[top] if top is not None else None
        add("majority_accuracy", bool(majority) and majority[0]["correct"])
        add("semantic_accuracy", label_row is not None and label_row["correct"])
        if majority and label_row is not None:
            add("agreement", label_row["answer_group"] == 0)
        sem_chosen = rows[picked.chosen] if not isinstance(picked, str) else None
        pair = pick_by_votes(votes_from_labels(rows), scpo_rule, rows[0]["id"])
        if not isinstance(pair, str) and sem_chosen is not None:
            c, r = rows[pair.chosen], rows[pair.rejected]
            s_r = rows[picked.rejected]
            add("scpo_chosen", c["correct"])
            add("semantic_chosen", sem_chosen["correct"])
            add("scpo_rejected", r["correct"])
            add("semantic_rejected", s_r["correct"])
            add("scpo_pair", c["correct"] and not r["correct"])
            add("semantic_pair", sem_chosen["correct"] and not s_r["correct"])
    result = {"file": path, "prompts": len(prompts), "responses": sum(map(len, prompts))}
    for key, values in out.items():
        clusters = units[key] if cluster_by != "none" else None
        mean, se = mean_and_stderr(values, clusters)
        result[key] = {"mean": round(mean, 4), "stderr": round(se, 4), "n": len(values)}
    return result


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", nargs="+", required=True)
    parser.add_argument("--task", default="gsm8k")
    parser.add_argument("--similarity", default="embedding", choices=("embedding", "lexical"))
    parser.add_argument("--model", default="all-minilm-l6-v2")
    parser.add_argument("--min_responses", type=int, default=5)
    parser.add_argument("--cluster_by", default="none", choices=("none", "id_prefix"))
    args = parser.parse_args(argv)
    settings = SemanticSettings(
        semantic_similarity=args.similarity,
        semantic_model=args.model,
        semantic_min_responses=args.min_responses,
        semantic_device="cpu",
    )
    voter, rule = SoftVoter(settings), settings.soft_vote_rule()
    results = [measure(path, args.task, voter, rule, args.cluster_by) for path in args.samples]
    for r in results:
        print(json.dumps(r))
    return results


if __name__ == "__main__":
    main()
