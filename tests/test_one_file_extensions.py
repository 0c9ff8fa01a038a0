"""Extending scpo is one new file: a labeler, a loss, a reward and a task, each written here as a user would (one
module, no other file edited), found by the registries by dotted path and run by the real stages on a tiny model.
Their settings blocks become recipe keys, and their declared needs (columns) are enforced by the stage."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT, read_jsonl, run_scpo, write_jsonl

LABELER = '''
"""`labeler: my_labeler:Shortest`: prefers the shortest response (a toy internal reward)."""
from dataclasses import dataclass

from scpo.core.settings import Block
from scpo.labelers import Choice, Labeler


@dataclass
class ShortestSettings(Block):
    length_unit: str = "chars"  # chars | words


class Shortest(Labeler):
    name = "shortest"
    settings = ShortestSettings

    def length(self, text):
        return len(text.split()) if self.s.length_unit == "words" else len(text)

    def label_config(self):
        return {"labeler": self.s.labeler, "length_unit": self.s.length_unit}

    def label(self, rows, files):
        return [{**r, "length": self.length(r["completion"])} for r in rows], {"completions": len(rows)}

    def pairs_config(self):
        return self.label_config()

    def pick(self, rows):
        lengths = [r["length"] for r in rows]
        if min(lengths) == max(lengths):
            return "tie"
        return Choice(lengths.index(min(lengths)), lengths.index(max(lengths)),
                      {"weight": 1.0, "source": "shortest", "length_gap": max(lengths) - min(lengths)})
'''

LOSS = '''
"""`loss: my_loss:Hinge` (SLiC-style): max(0, 1 - beta * D) * margin_scale, scaled per pair by `scale`."""
from dataclasses import dataclass

from scpo.core.settings import Block
from scpo.losses._base import PairLoss, preference_terms


@dataclass
class HingeSettings(Block):
    hinge_margin: float = 1.0  # the hinge's margin


class Hinge(PairLoss):
    name = "hinge"
    settings = HingeSettings
    columns = ("scale",)

    def __call__(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths, *,
                 beta, scale=None, **columns):
        margin, _ = preference_terms(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
        return (self.s.hinge_margin - beta * margin).clamp(min=0) * scale.to(margin.dtype)
'''

REWARD = '''
"""`reward_funcs: [my_reward:Short]`: 1 for a rollout of at most `short_max_chars` characters."""
from dataclasses import dataclass

from scpo.core.settings import Block
from scpo.rewards import Reward


@dataclass
class ShortSettings(Block):
    short_max_chars: int = 3  # the longest rollout that earns the reward


class Short(Reward):
    name = "short"
    settings = ShortSettings

    def __call__(self, batch):
        return [float(len(t.strip()) <= self.s.short_max_chars) for t in batch.texts]
'''

TASK = '''
"""`task: my_task:LastWord`: the answer is the completion's last word, case-folded."""
from dataclasses import dataclass

from scpo.tasks import Task


@dataclass
class LastWord(Task):
    name: str = "last_word"
    keys_are_exact: bool = True

    def extract(self, completion):
        words = completion.strip().split()
        return words[-1].strip(".").lower() if words else None
'''


@pytest.fixture()
def user_code(tmp_path):
    for name, code in (("my_labeler", LABELER), ("my_loss", LOSS), ("my_reward", REWARD), ("my_task", TASK)):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
    return {**os.environ, "PYTHONPATH": f"{ROOT}:{tmp_path}:{os.environ.get('PYTHONPATH', '')}"}


def samples(path: Path) -> Path:
    rows = []
    for p, completions in (("a", ["It is Paris.", "paris", "Lyon, I think"]), ("b", ["Rome", "Rome.", "ROME"])):
        for i, text in enumerate(completions):
            rows.append(
                {"id": p, "prompt": f"capital {p}?", "completion": text, "sample_index": i, "finish_reason": "stop"}
            )
    return write_jsonl(path, rows)


@pytest.mark.slow  # scpo in a subprocess
def test_a_labeler_is_one_file(tmp_path, user_code):
    sample_file = samples(tmp_path / "samples.jsonl")
    common = ["--labeler", "my_labeler:Shortest", "--length_unit", "words"]
    run_scpo(
        "label",
        *common,
        "--samples_file",
        str(sample_file),
        "--labels_file",
        str(tmp_path / "labels.jsonl"),
        env=user_code,
    )
    labels = read_jsonl(tmp_path / "labels.jsonl")
    assert [r["length"] for r in labels] == [3, 1, 3, 1, 1, 1]  # its setting (words, not characters) was applied
    run_scpo(
        "pairs",
        *common,
        "--labels_file",
        str(tmp_path / "labels.jsonl"),
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        env=user_code,
    )
    (pair,) = read_jsonl(tmp_path / "pairs.jsonl")  # prompt b: every answer one word long, a tie
    assert pair["chosen"] == [{"role": "assistant", "content": "paris"}] and pair["length_gap"] == 2
    assert pair["prompt"][-1]["content"].startswith("capital a?")  # the pair row the stage builds for every labeler
    manifest = json.loads((tmp_path / "pairs.jsonl.manifest.json").read_text())
    assert manifest["counts"]["skipped"] == {"tie": 1}
    bad = run_scpo(
        "label",
        "--labeler",
        "my_labeler:Shortest",
        "--length_unt",
        "words",
        "--samples_file",
        str(sample_file),
        check=False,
        env=user_code,
    )
    assert bad.returncode == 1 and "did you mean 'length_unit'" in bad.stderr


@pytest.mark.slow  # scpo in a subprocess
def test_a_task_is_one_file(tmp_path, user_code):
    sample_file = samples(tmp_path / "samples.jsonl")
    run_scpo(
        "label",
        "--task",
        "my_task:LastWord",
        "--samples_file",
        str(sample_file),
        "--labels_file",
        str(tmp_path / "labels.jsonl"),
        env=user_code,
    )
    labels = read_jsonl(tmp_path / "labels.jsonl")
    assert [r["answer"] for r in labels] == ["paris", "paris", "think", "rome", "rome", "rome"]
    assert [r["votes"] for r in labels] == [2, 2, 1, 3, 3, 3]


@pytest.mark.slow  # two short trainings of the tiny model (~40 s)
def test_a_loss_is_one_file(tmp_path, user_code, tiny_model):
    pairs = [
        {
            "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "chosen": [{"role": "assistant", "content": f"The answer is {2 * i}."}],
            "rejected": [{"role": "assistant", "content": f"The answer is {2 * i + 1}."}],
        }
        for i in range(4)
    ]
    write_jsonl(tmp_path / "no_scale.jsonl", pairs)
    common = [
        "--model",
        tiny_model,
        "--loss",
        "my_loss:Hinge",
        "--hinge_margin",
        "2.0",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--beta",
        "0.5",
    ]
    bad = run_scpo(
        "train",
        *common,
        "--pairs_file",
        str(tmp_path / "no_scale.jsonl"),
        "--output_dir",
        str(tmp_path / "m0"),
        check=False,
        env=user_code,
    )
    assert bad.returncode == 1 and "the hinge loss needs a numeric 'scale' column" in bad.stderr  # its declared column
    write_jsonl(tmp_path / "pairs.jsonl", [{**p, "scale": 0.5} for p in pairs])
    run_scpo(
        "train",
        *common,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(tmp_path / "m1"),
        "--learning_rate",
        "0",
        env=user_code,
    )
    counts = json.loads((tmp_path / "m1.manifest.json").read_text())["counts"]
    assert counts["loss_type"] == "my_loss:Hinge" and counts["scale/mean"] == 0.5  # the column reached the loss
    # learning rate 0 and the reference = the model: D = 0, so each pair's loss is margin x scale = 2.0 x 0.5
    assert counts["train_loss"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow  # two GRPO steps of the tiny model (~30 s)
def test_a_reward_is_one_file(tmp_path, user_code, tiny_model):
    write_jsonl(tmp_path / "problems.jsonl", [{"id": f"p{i}", "prompt": f"Say {i}."} for i in range(4)])
    out = tmp_path / "grpo"
    run_scpo(
        "grpo",
        "--model",
        tiny_model,
        "--task",
        "my_task:LastWord",
        "--problems_file",
        str(tmp_path / "problems.jsonl"),
        "--reward_funcs",
        "majority,my_reward:Short",
        "--short_max_chars",
        "1000",
        "--output_dir",
        str(out),
        "--num_generations",
        "4",
        "--per_device_train_batch_size",
        "4",
        "--max_steps",
        "2",
        "--max_completion_length",
        "4",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--gradient_checkpointing",
        "false",
        env={**user_code, "OMP_NUM_THREADS": "1"},
    )
    log = [json.loads(line) for line in (out / "grpo_log.jsonl").read_text().splitlines()]
    logged = [e for e in log if "rewards/short/mean" in e]
    assert logged and all(e["rewards/short/mean"] == 1.0 for e in logged)  # every rollout is under 1000 characters
