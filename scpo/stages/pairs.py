"""`scpo pairs`: preference pairs from a labels file, in TRL's preference format, by the chosen labeler.

Each pair row: id, prompt (chat messages), chosen / rejected (assistant turns), weight, the
labeler's columns (votes: k, chosen_votes, rejected_votes, num_answers, top_share, answers, source;
internal rewards: source, chosen_reward, rejected_reward, ...). When the samples carry the sampler's
log-probs, ref_chosen_logps / ref_rejected_logps ride along: the sampler is the DPO reference, so
training needs no reference forward pass. One code path whatever the labeler: the labeler picks
each prompt's pair, the row is built once (scpo/labelers/_base.py: pair_row).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from scpo.core.blocks import StageBlock, TaskBlock
from scpo.core.errors import ScpoError
from scpo.core.io import check_writable, read_numbered, write_rows
from scpo.core.manifest import check_distinct, iter_file, run_once
from scpo.core.rows import check_gold, check_sample_rows, group_by_prompt
from scpo.core.settings import parse_settings, peek, with_extensions
from scpo.labelers import LABELERS, pair_row
from scpo.tasks import get_task


@dataclass
class PairsSettings(StageBlock, TaskBlock):
    """scpo pairs: preference pairs from a labels file, by the chosen labeler."""

    OUTPUTS = ("pairs_file",)  # checked against every other path setting (scpo/core/settings.py)

    labels_file: str | None = None  # default <iter_dir>/labels.jsonl
    pairs_file: str | None = None  # default <iter_dir>/pairs.jsonl
    labeler: str = "votes"  # the labeler that made the labels: votes | judge | implicit | cream | scir | semantic
    seed: int = 0  # random picks among equals, seeded with each prompt's id

    def __post_init__(self):
        super().__post_init__()
        LABELERS.get(self.labeler)  # a named error (with the closest name) for an unknown labeler


SETTINGS = PairsSettings
EXTENSIONS = LABELERS


def settings_class(argv: list[str]) -> type:
    """This stage's settings with every labeler's own block (and a user labeler's, named by dotted path)."""
    return with_extensions(PairsSettings, LABELERS, peek(argv, "labeler"))


def build_pairs(rows: list[dict], labeler) -> tuple[list[dict], dict]:
    """Every prompt's pair (or the reason it has none), then the labeler's filter or mix, and the counts."""
    by_prompt = group_by_prompt(rows)
    pairs, choices, skipped = [], [], Counter()
    for prompt_rows in by_prompt.values():
        labeler.check(prompt_rows)
        picked = labeler.pick(prompt_rows)
        if isinstance(picked, str):
            skipped[picked] += 1
            continue
        for choice in picked if isinstance(picked, list) else [picked]:  # a labeler may give several pairs (IRPO)
            pairs.append(pair_row(prompt_rows, choice, labeler.task))
            choices.append(choice)
    counts: dict = {"prompts": len(by_prompt), "skipped": skipped}
    pairs = labeler.finish(pairs, choices, counts)  # may drop pairs (the semi-supervised mix, SCIR's filter)
    counts.update(prompts_with_pairs=len({str(p["id"]) for p in pairs}), pairs=len(pairs), skipped=dict(skipped))
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


def run(s) -> dict:
    labels = iter_file(s.iter_dir, s.labels_file, "labels.jsonl")
    out = iter_file(s.iter_dir, s.pairs_file, "pairs.jsonl")
    check_distinct({"pairs_file": out}, {"labels_file": labels})
    check_writable(out, "pairs_file")
    labeler = LABELERS.get(s.labeler)(s, get_task(s.task, **s.task_options))

    def body() -> dict:
        rows = check_sample_rows(read_numbered(labels, required=labeler.label_fields), labels)
        check_gold(rows, labeler.task, labels)
        pairs, counts = build_pairs(rows, labeler)
        if not pairs:
            raise ScpoError(
                f"{labels}: 0 pairs from {counts['prompts']} prompts (skipped: {counts['skipped']}); "
                f"{labeler.no_pairs_advice(counts)}"
            )
        write_rows(out, pairs)
        print(f"[pairs] {out}: {counts}")
        return counts

    return run_once("pairs", out, labeler.pairs_config(), [labels], body, s.overwrite)


def main(argv: list[str]) -> dict:
    return run(parse_settings(settings_class(argv), argv, title=PairsSettings.__doc__))
