"""`scpo label`: label each sample by the chosen labeler (votes by default; judge, implicit, cream, scir).

Reads a samples file (id, prompt, completion[, gold, finish_reason, resampled]) and writes a
labels file: every sample row plus the labeler's columns (scpo/labelers/<labeler>.py says which).
One code path whatever the labeler: read, label, write atomically with a manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from scpo.core.blocks import EngineBlock, ModelBlock, ShardBlock, StageBlock, TaskBlock
from scpo.core.errors import ScpoError
from scpo.core.io import check_writable, read_numbered, write_rows
from scpo.core.manifest import check_distinct, iter_file, run_once
from scpo.core.rows import check_gold, check_sample_rows, group_by_prompt
from scpo.core.settings import parse_settings, peek, with_extensions
from scpo.labelers import LABELERS, LabelFiles
from scpo.tasks import get_task


@dataclass
class LabelSettings(StageBlock, ShardBlock, EngineBlock, TaskBlock, ModelBlock):
    """scpo label: label each sample by the chosen labeler (votes, judge, implicit, cream, scir)."""

    OUTPUTS = ("labels_file",)  # checked against every other path setting (scpo/core/settings.py)

    samples_file: str | None = None  # default <iter_dir>/samples.jsonl
    labels_file: str | None = None  # default <iter_dir>/labels.jsonl
    labeler: str = "votes"  # votes | judge | implicit | cream | scir | semantic, or a dotted path to a Labeler
    reference_model: str | None = None  # M_{t-1}, M_t's DPO reference; none for M_0 (the loop passes it)
    previous_reference_model: str | None = None  # M_{t-2} (cream: the previous iteration's reference)
    teacher_samples: str | None = (
        None  # vote_teacher frozen | ema: a teacher's samples of the same prompts, which vote (the loop passes them); the model's own samples make the pairs
    )

    def __post_init__(self):
        super().__post_init__()
        LABELERS.get(self.labeler)  # a named error (with the closest name) for an unknown labeler
        # "" from a shell loop that has no previous model yet means "none"
        self.reference_model = self.reference_model or None
        self.previous_reference_model = self.previous_reference_model or None


SETTINGS = LabelSettings
EXTENSIONS = LABELERS  # each labeler's settings are recipe keys of this stage


def settings_class(argv: list[str]) -> type:
    """This stage's settings with every labeler's own block (and a user labeler's, named by dotted path)."""
    return with_extensions(LabelSettings, LABELERS, peek(argv, "labeler"))


def read_samples(path: str, required: dict) -> list[dict]:
    return check_sample_rows(read_numbered(path, required=required), path)


def run(s) -> dict | None:
    files = LabelFiles(
        samples=iter_file(s.iter_dir, s.samples_file, "samples.jsonl"),
        labels=iter_file(s.iter_dir, s.labels_file, "labels.jsonl"),
    )
    check_distinct({"labels_file": files.labels}, {"samples_file": files.samples})
    check_writable(files.labels, "labels_file")
    labeler = LABELERS.get(s.labeler)(s, get_task(s.task, **s.task_options))
    config = labeler.label_config()
    if s.shard_index is not None:  # one shard of the work (a Slurm array task); the labels come from a full run
        if not labeler.shardable:
            raise ScpoError(f"setting shard_index: labeler={s.labeler} is not sharded (only the judge labelers are)")
        labeler.label_shard(read_samples(files.samples, labeler.sample_fields), files)
        return None

    inputs = [files.samples]
    if s.teacher_samples:
        if not labeler.takes_teacher_votes:
            raise ScpoError(
                f"setting teacher_samples (vote_teacher): labeler={s.labeler} does not label by votes; "
                "a vote teacher works with the votes labeler"
            )
        check_distinct({"labels_file": files.labels}, {"teacher_samples": s.teacher_samples})
        inputs.append(s.teacher_samples)

    def body() -> dict:
        rows = read_samples(files.samples, labeler.sample_fields)
        check_gold(rows, labeler.task, files.samples)
        if s.teacher_samples:
            rows = with_teacher_rows(rows, read_samples(s.teacher_samples, labeler.sample_fields), s.teacher_samples)
        labeled, counts = labeler.label(rows, files)
        if s.teacher_samples:
            counts["teacher_completions"] = sum(bool(r.get("teacher")) for r in labeled)
        write_rows(files.labels, labeled)
        print(f"[label] {files.labels}: {counts}")
        return counts

    return run_once("label", files.labels, config, inputs, body, s.overwrite)


def with_teacher_rows(rows: list[dict], teacher: list[dict], path: str) -> list[dict]:
    """The model's samples with the teacher's samples of the same prompts after each prompt's, marked `teacher`
    (ScPO's extra samples of the teacher are left out: only its k samples vote)."""
    by_id = group_by_prompt([{**row, "teacher": True} for row in teacher if not row.get("resampled", False)])
    own = group_by_prompt(rows)
    missing = [i for i in own if i not in by_id]
    if missing:
        raise ScpoError(
            f"{path}: the vote teacher has no samples of {len(missing)} prompt(s) of the samples file "
            f"(first: {missing[0]!r}); the teacher must sample the same problems"
        )
    return [row for prompt, prompt_rows in own.items() for row in prompt_rows + by_id[prompt]]


def main(argv: list[str]) -> dict | None:
    return run(parse_settings(settings_class(argv), argv, title=LabelSettings.__doc__))
