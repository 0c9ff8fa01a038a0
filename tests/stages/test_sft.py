"""`scpo sft` on the tiny model (TRL's SFTTrainer), its `sft_<name>` settings, and the loop plan that starts from it."""

from __future__ import annotations

import json

import pytest
from helpers import run_scpo, write_jsonl


@pytest.mark.slow  # one short fine-tuning of the tiny model (~20 s)
def test_sft_trains_on_seed_data_with_its_own_learning_rate(tmp_path, tiny_model):
    write_jsonl(
        tmp_path / "seed.jsonl",
        [
            {"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]}
            for i in range(8)
        ],
    )
    out = tmp_path / "sft"
    run_scpo(
        "sft",
        "--model",
        tiny_model,
        "--sft_file",
        str(tmp_path / "seed.jsonl"),
        "--output_dir",
        str(out),
        "--learning_rate",
        "1e-6",
        "--sft_learning_rate",
        "1e-3",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "4",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
    )
    manifest = json.loads((tmp_path / "sft.manifest.json").read_text())
    assert manifest["config"]["training"]["learning_rate"] == 1e-3  # sft_learning_rate over learning_rate
    assert manifest["counts"]["examples"] == 8 and manifest["counts"]["global_step"] == 2
    assert (out / "model.safetensors").exists()


@pytest.mark.slow  # scpo in a subprocess
def test_sft_refuses_rows_in_no_sft_format(tmp_path, tiny_model):
    write_jsonl(tmp_path / "seed.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}, {"question": "no"}])
    proc = run_scpo(
        "sft",
        "--model",
        tiny_model,
        "--sft_file",
        str(tmp_path / "seed.jsonl"),
        "--output_dir",
        str(tmp_path / "m"),
        check=False,
    )
    assert proc.returncode == 1 and "seed.jsonl:2: an SFT example needs one of messages" in proc.stderr


def test_the_plan_starts_from_the_sft_model_with_the_base_as_its_reference(tmp_path):
    from scpo.loop.plan import plan

    _, steps = plan(
        ["--run_name", "c", "--model", "base", "--sft_file", "seed.jsonl", "--labeler", "cream", "--iterations", "2"]
    )
    assert [s.stage for s in steps[:3]] == ["sft", "eval", "sample"]
    assert steps[0].args[-4:] == ["--model", "base", "--output_dir", "runs/c/sft/model"]
    label0 = next(s for s in steps if s.stage == "label" and s.iteration == 0)
    assert label0.args[-4:] == ["--model", "runs/c/sft/model", "--reference_model", "base"]
    assert steps[1].after == ["sft"] and next(s for s in steps if s.stage == "sample").after == ["sft"]
    label1 = next(s for s in steps if s.stage == "label" and s.iteration == 1)
    assert label1.args[-6:] == [
        "--model",
        "runs/c/iter_0/model",
        "--reference_model",
        "runs/c/sft/model",
        "--previous_reference_model",
        "base",
    ]
