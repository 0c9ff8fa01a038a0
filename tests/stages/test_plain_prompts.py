"""A task without a chat template (base models, ScPO's zero-shot prompts): plain-text prompts through sampling,
labels, pairs in TRL's plain preference format, and training on the sampler's own log-probs of the same tokens."""

from __future__ import annotations

import json

import pytest
from helpers import read_jsonl, run_scpo, write_jsonl

TEMPLATE = "Answer the following question step-by-step.\nQ: {problem}\nA: Let's think step by step."
OPTIONS = json.dumps({"chat": False, "prompt_template": TEMPLATE, "truncated_completions_vote": True})


def test_the_task_builds_the_plain_prompt():
    from scpo.tasks import get_task

    task = get_task("gsm8k", chat=False, prompt_template=TEMPLATE)
    assert task.build_prompt("What is 2 + 3?") == TEMPLATE.replace("{problem}", "What is 2 + 3?")
    assert get_task("gsm8k").build_prompt("x")[-1]["role"] == "user"  # chat by default


@pytest.mark.slow  # sample, label, pairs and a training step of the tiny model (~40 s)
def test_plain_prompts_from_sampling_to_training(tmp_path, tiny_model):
    from transformers import AutoTokenizer

    problems = [{"id": f"p{i}", "prompt": f"What is {i} + 1?"} for i in range(4)]
    write_jsonl(tmp_path / "problems.jsonl", problems)
    common = ["--task", "first_letter:FirstLetter", "--task_options", OPTIONS]
    (tmp_path / "first_letter.py").write_text(
        "from dataclasses import dataclass\nfrom scpo.tasks import Task\n\n@dataclass\nclass FirstLetter(Task):\n"
        "    keys_are_exact: bool = True\n\n    def extract(self, completion):\n"
        "        return next((c.lower() for c in completion if c.isalpha()), None)\n"
    )
    import os

    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"}
    run_scpo(
        "sample",
        "--model",
        tiny_model,
        "--backend",
        "hf",
        "--iter_dir",
        str(tmp_path),
        "--k",
        "6",
        "--max_tokens",
        "6",
        "--temperature",
        "1.0",
        "--save_token_ids",
        "--dtype",
        "float32",
        *common,
        env=env,
    )
    samples = read_jsonl(tmp_path / "samples.jsonl")
    prompt = TEMPLATE.replace("{problem}", "What is 0 + 1?")
    assert samples[0]["messages"] == prompt  # the plain text that was sampled
    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert "<|im_start|>" not in tok.decode(tok(prompt)["input_ids"])  # no chat template around it
    run_scpo("label", "--iter_dir", str(tmp_path), *common, env=env)
    run_scpo("pairs", "--iter_dir", str(tmp_path), "--tau", "0.01", "--top_tie", "random", *common, env=env)
    pairs = read_jsonl(tmp_path / "pairs.jsonl")
    assert pairs and all(isinstance(p[key], str) for p in pairs for key in ("prompt", "chosen", "rejected"))
    out = tmp_path / "model"
    run_scpo(
        "train",
        "--model",
        tiny_model,
        "--iter_dir",
        str(tmp_path),
        "--output_dir",
        str(out),
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "2",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        *common,
        env=env,
    )
    counts = json.loads((tmp_path / "model.manifest.json").read_text())["counts"]
    # the sampler's log-probs are the training forward's over the same plain-text tokens
    assert counts["reference"] == "sampler" and counts["ref_logps_check"]["max_gap_per_token"] < 1e-4
