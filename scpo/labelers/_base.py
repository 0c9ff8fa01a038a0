"""What a labeler is, and the pair row every labeler's pairs share.

A labeler turns a samples file into a labels file (`scpo label`) and a labels file into
preference pairs (`scpo pairs`). Its file declares what it needs:

- `settings`: a settings block (a dataclass) whose fields become recipe keys of both stages;
- `reference_models`: how many earlier models its labels depend on (1: M_{t-1}, M_t's DPO
  reference; 2: also M_{t-2}); the loop passes them as `reference_model` / `previous_reference_model`;
- `needs_gpu`: its label job runs an engine (a judge), so a Slurm label job asks for GPUs;
- `shardable`: `--shard_index i` labels one shard (a Slurm array task), like `scpo sample`;
- `takes_teacher_votes`: its labels are votes, which a vote teacher's samples can cast (`vote_teacher`);
- `sample_fields` / `label_fields`: the columns it requires in its input rows.

The stages call `label(rows)` once per file and `pick(prompt_rows)` once per prompt; the pair row
itself is built here (`pair_row`), once for every labeler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from scpo.core.rows import SAMPLE_FIELDS, prompt_of
from scpo.tasks import Task


@dataclass
class LabelFiles:
    samples: str  # the input of `scpo label`
    labels: str  # its output (judge shards go next to it)


@dataclass
class Choice:
    """One prompt's pair: indices into its rows, and the labeler's own pair columns (in order)."""

    chosen: int
    rejected: int
    columns: dict[str, Any] = field(default_factory=dict)
    extra: Any = None  # what `finish` needs besides the row (SCIR: each reward's preference probability)


class Labeler:
    name: ClassVar[str]
    settings: ClassVar[type | None] = None
    reference_models: ClassVar[int] = 0
    needs_gpu: ClassVar[bool] = False
    shardable: ClassVar[bool] = False
    takes_teacher_votes: ClassVar[bool] = False  # labels by votes that a vote teacher's samples can cast
    sample_fields: ClassVar[dict] = SAMPLE_FIELDS
    label_fields: ClassVar[dict] = SAMPLE_FIELDS

    def __init__(self, settings, task: Task):
        self.s, self.task = settings, task

    @classmethod
    def check_recipe(cls, argv: list[str]) -> None:
        """Named errors for the run's settings (`argv`: recipe and overrides) that `scpo label` would refuse only
        after sampling (semantic: an encoder folder that is missing or not an encoder); the loop plan calls it first."""

    # ---- scpo label
    def label_config(self) -> dict:
        """What the labels depend on (hashed into the labels manifest)."""
        raise NotImplementedError

    def label(self, rows: list[dict], files: LabelFiles) -> tuple[list[dict], dict]:
        """Every sample row with this labeler's columns added, and counts for the manifest."""
        raise NotImplementedError

    def label_shard(self, rows: list[dict], files: LabelFiles) -> None:
        """One shard of the work (`shardable` labelers only); the labels are written by a run without shard_index."""
        raise NotImplementedError

    # ---- scpo pairs
    def pairs_config(self) -> dict:
        """What the pairs depend on besides the labels file (hashed into the pairs manifest)."""
        raise NotImplementedError

    def check(self, prompt_rows: list[dict]) -> None:
        """A named error when a prompt's labels were not made by this labeler."""

    def pick(self, prompt_rows: list[dict]) -> Choice | list[Choice] | str:
        """One prompt's pair (or pairs), or the reason there is none (counted as skipped)."""
        raise NotImplementedError

    def finish(self, pairs: list[dict], choices: list[Choice], counts: dict) -> list[dict]:
        """The pairs to keep (a filter or a mix over all prompts), adding its own counts."""
        return pairs

    def no_pairs_advice(self, counts: dict) -> str:
        return "sample more responses per prompt or raise the sampling temperature"


def pair_row(rows: list[dict], choice: Choice, task: Task) -> dict:
    """The pair in TRL's preference format: prompt (chat), chosen / rejected (assistant turns), or all three as
    plain text for a task without a chat template; the labeler's columns, gold correctness of chosen (reporting
    only), origin, and the sampler's reference columns."""
    c, r = rows[choice.chosen], rows[choice.rejected]
    prompt = prompt_of(c, task)
    turn = (lambda text: text) if isinstance(prompt, str) else (lambda text: [{"role": "assistant", "content": text}])
    pair = {
        "id": c["id"],
        "prompt": prompt,
        "chosen": turn(c["completion"]),
        "rejected": turn(r["completion"]),
        **choice.columns,
    }
    if c.get("correct") is not None:  # a parquet file has every column in every row: None is "no gold"
        pair["chosen_correct"] = bool(c["correct"])
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


def gold_correctness(rows: list[dict], task: Task) -> list[bool | None]:
    """Each response's correctness against its prompt's gold answer, for reporting only (None: no gold)."""
    out = []
    for r in rows:
        if r.get("gold") is None:
            out.append(None)
            continue
        answer = task.vote_answer(r["completion"], r.get("finish_reason") == "length")
        gold = task.extract_gold(r["gold"])
        out.append(answer is not None and gold is not None and task.equivalent(answer, gold))
    return out
