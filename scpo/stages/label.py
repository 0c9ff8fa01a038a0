"""`scpo label`: extract each completion's final answer and count self-consistency votes.

Reads a samples file (id, prompt, completion[, gold, finish_reason, resampled]) and writes a
labels file: every sample row plus answer, answer_group (-1: no answer), votes = V(y), k,
num_answers, top_share and, where the prompt has a gold answer, correct.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from tqdm import tqdm

from scpo.errors import ScpoError
from scpo.io import read_rows, write_rows
from scpo.settings import asdict, parse_settings
from scpo.stages.common import iter_file, run_once
from scpo.tasks import Task, get_task
from scpo.voting import UNPARSED, vote

SAMPLE_FIELDS = {"id": (str, int), "prompt": (str, list), "completion": str}


@dataclass
class LabelSettings:
    task: str = "gsm8k"
    task_options: dict = field(default_factory=dict)
    iter_dir: str | None = None
    samples_file: str | None = None
    labels_file: str | None = None
    labeler: str = "votes"  # judge | implicit | cream | scir: internal rewards instead (scpo/stages/reward.py)
    iteration: int = 0
    overwrite: bool = False


def group_by_prompt(rows: list[dict]) -> dict[str, list[dict]]:
    by_id: dict[str, list[dict]] = {}
    for row in rows:
        by_id.setdefault(str(row["id"]), []).append(row)
    return by_id


def label_prompt(rows: list[dict], task: Task) -> list[dict]:
    """Label one prompt's samples; returns new rows (inputs untouched)."""
    answers = [task.vote_answer(row["completion"], row.get("finish_reason") == "length") for row in rows]
    voting = [not row.get("resampled", False) for row in rows]
    drawn = rows[0].get("num_drawn")
    if drawn is not None and sum(voting) != drawn:  # adaptive sampling: the prompt's k is what was drawn
        raise ScpoError(f"prompt {rows[0]['id']!r}: {sum(voting)} voting samples but num_drawn={drawn} "
                        "(rows lost or duplicated)")
    votes = vote(answers, task, voting)
    gold = next((row["gold"] for row in rows if row.get("gold") is not None), None)
    group_correct = None
    if gold is not None:
        gold_answer = task.extract_gold(str(gold))
        group_correct = [gold_answer is not None and task.equivalent(g.answer, gold_answer) for g in votes.groups]
    top_share = votes.top_votes / votes.k if votes.k else 0.0
    out = []
    for i, row in enumerate(rows):
        g = votes.group_of[i]
        labeled = dict(row)
        labeled.update(
            answer=answers[i],
            answer_group=g,
            votes=votes.votes_of(i),
            k=votes.k,
            num_answers=votes.num_answers,
            top_share=top_share,
        )
        if group_correct is not None:
            labeled["correct"] = False if g == UNPARSED else group_correct[g]
        out.append(labeled)
    return out


def label_rows(rows: list[dict], task: Task, progress: bool = True) -> tuple[list[dict], dict]:
    by_id = group_by_prompt(rows)
    out: list[dict] = []
    unparsed = all_unparsed = majority_correct = with_gold = 0
    for prompt_rows in tqdm(by_id.values(), desc="label", unit="prompt", disable=not progress or None):
        labeled = label_prompt(prompt_rows, task)
        out.extend(labeled)
        unparsed += sum(r["answer_group"] == UNPARSED for r in labeled)
        all_unparsed += all(r["answer_group"] == UNPARSED for r in labeled)
        if "correct" in labeled[0]:
            with_gold += 1
            majority_correct += any(r["correct"] and r["answer_group"] == 0 for r in labeled)
    counts = {
        "prompts": len(by_id),
        "completions": len(rows),
        "unparsed_completions": unparsed,
        "prompts_all_unparsed": all_unparsed,
    }
    if with_gold:
        counts["majority_accuracy"] = round(majority_correct / with_gold, 4)
        counts["prompts_with_gold"] = with_gold
    return out, counts


def run(settings: LabelSettings) -> dict:
    samples = iter_file(settings.iter_dir, settings.samples_file, "samples.jsonl")
    labels = iter_file(settings.iter_dir, settings.labels_file, "labels.jsonl")
    task = get_task(settings.task, **settings.task_options)
    config = {k: v for k, v in asdict(settings).items() if k in ("task", "task_options")}

    def body() -> dict:
        rows = read_rows(samples, required=SAMPLE_FIELDS)
        try:
            labeled, counts = label_rows(rows, task)
        except ScpoError as e:
            raise ScpoError(f"{samples}: {e}") from None
        write_rows(labels, labeled)
        if counts["prompts_all_unparsed"]:
            print(f"[label] {counts['prompts_all_unparsed']} prompt(s) had no parseable answer at all; "
                  "they give no pair", file=sys.stderr)
        print(f"[label] {labels}: {counts}")
        return counts

    return run_once("label", labels, config, [samples], body, settings.overwrite)


def main(argv: list[str]) -> dict | None:
    settings = parse_settings(LabelSettings, argv)
    if settings.labeler != "votes":  # the model labels its own responses: judge, implicit reward, CREAM, SCIR
        from scpo.stages.reward import main_label

        return main_label(argv)
    return run(settings)
