"""`scpo pairs`: ScPO preference pairs (or gold pairs) from a labels file, in TRL's preference format.

Each pair row: id, prompt (chat messages), chosen / rejected (assistant turns), weight, and the
prompt's vote statistics (k, chosen_votes, rejected_votes, num_answers, top_share, answers,
source). When the samples carry the sampler's log-probs, ref_chosen_logps / ref_rejected_logps
ride along: the sampler is the DPO reference, so training needs no reference forward pass.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from scpo.errors import ScpoError
from scpo.io import read_rows, write_rows
from scpo.pairs import PairRule, mix_sources, pick
from scpo.settings import asdict, parse_settings
from scpo.stages.common import iter_file, run_once
from scpo.stages.label import group_by_prompt
from scpo.tasks import Task, get_task
from scpo.voting import UNPARSED, Group, PromptVotes

LABEL_FIELDS = {"id": (str, int), "prompt": (str, list), "completion": str, "answer_group": int}


@dataclass
class PairsSettings:
    tau: float = 0.5
    mode: str = "unsupervised"
    seed: int = 0
    weighting: str = "margin"
    top_tie: str = "skip"
    gold_ratio: float | None = None  # semi_supervised: share of gold pairs in the mix (the plentiful source is cut)
    labeler: str = "votes"  # judge | implicit | cream | scir: pairs from internal rewards (scpo/stages/reward.py)
    task: str = "gsm8k"
    task_options: dict = field(default_factory=dict)
    iter_dir: str | None = None
    labels_file: str | None = None
    pairs_file: str | None = None
    iteration: int = 0
    overwrite: bool = False


def votes_from_labels(rows: list[dict]) -> PromptVotes:
    """Rebuilds a prompt's vote groups from its labeled rows (no re-grading)."""
    n_groups = max((r["answer_group"] for r in rows), default=UNPARSED) + 1
    groups = [Group(answer="", key=None) for _ in range(n_groups)]
    unparsed_votes = 0
    for i, r in enumerate(rows):
        counts = not r.get("resampled", False)
        if r["answer_group"] == UNPARSED:
            unparsed_votes += counts
            continue
        g = groups[r["answer_group"]]
        g.members.append(i)
        g.votes += counts
        g.answer = g.answer or r["answer"]
    return PromptVotes(k=sum(not r.get("resampled", False) for r in rows), groups=groups,
                       group_of=[r["answer_group"] for r in rows], unparsed_votes=unparsed_votes)


def messages_of(row: dict, task: Task) -> list[dict]:
    """The chat a labeled row was sampled with."""
    if row.get("messages"):
        return row["messages"]
    if isinstance(row["prompt"], list):
        return row["prompt"]
    return task.build_messages(row["prompt"])


def pairs_for_prompt(rows: list[dict], rule: PairRule, task: Task) -> dict | str:
    votes = votes_from_labels(rows)
    # A parquet file has every column in every row: None means "no gold for this prompt".
    correct = [bool(r["correct"]) for r in rows] if rows[0].get("correct") is not None else None
    result = pick(votes, rule, rows[0]["id"], correct)
    if isinstance(result, str):
        return result
    c, r = rows[result.chosen], rows[result.rejected]
    pair = {
        "id": c["id"],
        "prompt": messages_of(c, task),
        "chosen": [{"role": "assistant", "content": c["completion"]}],
        "rejected": [{"role": "assistant", "content": r["completion"]}],
        "weight": result.weight,
        "chosen_votes": result.chosen_votes,
        "rejected_votes": result.rejected_votes,
        "k": votes.k,
        "num_answers": votes.num_answers,
        "top_share": votes.top_votes / votes.k if votes.k else 0.0,
        "chosen_answer": c.get("answer"),
        "rejected_answer": r.get("answer"),
        "source": result.source,
    }
    if correct is not None:
        pair["chosen_correct"] = correct[result.chosen]
    if c.get("origin"):
        pair["origin"] = c["origin"]
    pair.update(sampler_columns(c, r))
    return pair


def sampler_columns(c: dict, r: dict) -> dict:
    """The sampler's log-probs and exact tokens of a chosen / rejected sample row: the DPO reference for free."""
    out = {}
    if c.get("logprob") is not None and r.get("logprob") is not None:
        out["ref_chosen_logps"] = c["logprob"]
        out["ref_rejected_logps"] = r["logprob"]
        if c.get("sampler"):
            out["ref_model"] = c["sampler"]  # whose log-probs these are
    if c.get("completion_token_ids") is not None and r.get("completion_token_ids") is not None:
        # The exact sampled tokens: training scores what was sampled, so the sampler's log-probs are its reference.
        out["chosen_token_ids"] = c["completion_token_ids"]
        out["rejected_token_ids"] = r["completion_token_ids"]
    return out


def build_pairs(rows: list[dict], rule: PairRule, task: Task,
                gold_ratio: float | None = None) -> tuple[list[dict], dict]:
    pairs, skipped = [], Counter()
    by_prompt = group_by_prompt(rows)
    for prompt_rows in by_prompt.values():
        result = pairs_for_prompt(prompt_rows, rule, task)
        if isinstance(result, str):
            skipped[result] += 1
        else:
            pairs.append(result)
    counts = {"prompts": len(pairs) + sum(skipped.values())}
    if gold_ratio is not None:
        before = Counter(p["source"] for p in pairs)
        scarce = [src for src, share in (("gold", gold_ratio), ("votes", 1 - gold_ratio)) if share and not before[src]]
        if scarce:
            raise ScpoError(f"setting gold_ratio={gold_ratio}: no {scarce[0]} pairs to mix ({dict(before)}; "
                            f"skipped: {dict(skipped)})")
        pairs = mix_sources(pairs, gold_ratio, rule.seed)
        after = Counter(p["source"] for p in pairs)
        counts["dropped_for_ratio"] = {s: before[s] - after[s] for s in before if before[s] > after[s]}
    counts.update(pairs=len(pairs), skipped=dict(skipped))
    sources = Counter(p["source"] for p in pairs)
    if len(sources) > 1:
        counts["pairs_by_source"] = dict(sources)
    generated = sum(r[0].get("origin") == "generated" for r in by_prompt.values())
    if generated:  # new problems enter like seed problems; only those whose vote reaches tau give a pair
        counts["generated_prompts"] = generated
        counts["generated_pairs"] = sum(p.get("origin") == "generated" for p in pairs)
    if pairs:
        counts["mean_weight"] = round(sum(p["weight"] for p in pairs) / len(pairs), 4)
        judged = [p["chosen_correct"] for p in pairs if "chosen_correct" in p]
        if judged:
            counts["chosen_accuracy"] = round(sum(judged) / len(judged), 4)
    return pairs, counts


def run(settings: PairsSettings) -> dict:
    labels = iter_file(settings.iter_dir, settings.labels_file, "labels.jsonl")
    out = iter_file(settings.iter_dir, settings.pairs_file, "pairs.jsonl")
    if settings.gold_ratio is not None and settings.mode != "semi_supervised":
        raise ScpoError(f"setting gold_ratio={settings.gold_ratio} needs mode: semi_supervised (now {settings.mode!r})")
    rule = PairRule(tau=settings.tau, mode=settings.mode, seed=settings.seed,
                    weighting=settings.weighting, top_tie=settings.top_tie)
    task = get_task(settings.task, **settings.task_options)
    config = {k: v for k, v in asdict(settings).items()
              if k in ("tau", "mode", "seed", "weighting", "top_tie", "gold_ratio", "task", "task_options")}

    def body() -> dict:
        rows = read_rows(labels, required=LABEL_FIELDS)
        pairs, counts = build_pairs(rows, rule, task, settings.gold_ratio)
        if not pairs:
            raise ScpoError(
                f"{labels}: 0 pairs from {counts['prompts']} prompts (skipped: {counts['skipped']}); "
                f"lower tau (now {settings.tau}), raise k, or raise the sampling temperature so answers "
                "disagree more")
        write_rows(out, pairs)
        print(f"[pairs] {out}: {counts}")
        return counts

    return run_once("pairs", out, config, [labels], body, settings.overwrite)


def main(argv: list[str]) -> dict:
    settings = parse_settings(PairsSettings, argv)
    if settings.labeler != "votes":  # internal rewards: max vs min reward, CREAM consistency, SCIR filter
        from scpo.stages.reward import main_pairs

        return main_pairs(argv)
    return run(settings)
