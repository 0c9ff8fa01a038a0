"""The training stage on a tiny model, for real: TRL's DPOTrainer, accelerate, DeepSpeed ZeRO, PEFT."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers import run_scpo, write_jsonl

FAST = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--report_to", "none", "--logging_steps", "1",
        "--beta", "0.5", "--save_strategy", "no"]


def text_pairs(n: int = 8) -> list[dict]:
    return [{"id": i, "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
             "chosen": [{"role": "assistant", "content": f"{i} + {i} = {2 * i}. The answer is {2 * i}."}],
             "rejected": [{"role": "assistant", "content": f"The answer is {2 * i + 1}."}],
             "weight": [0.25, 0.5, 0.75, 1.0][i % 4], "chosen_votes": 5, "rejected_votes": 1, "k": 8}
            for i in range(n)]


def sampler_pairs(model_path: str, n: int = 8) -> list[dict]:
    """Pairs as the sampler writes them: exact token ids and the reference model's own log-probs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()

    def logp(prompt_ids, ids):
        x = torch.tensor([prompt_ids + ids])
        with torch.no_grad():
            lp = model(x).logits[0, :-1].log_softmax(-1)
        return lp[len(prompt_ids) - 1:][torch.arange(len(ids)), x[0, len(prompt_ids):]].sum().item()

    rows = []
    for pair in text_pairs(n):
        prompt_ids = list(tok.apply_chat_template(pair["prompt"], add_generation_prompt=True, tokenize=True)["input_ids"])
        chosen = tok(pair["chosen"][0]["content"])["input_ids"] + [tok.eos_token_id]
        rejected = tok(pair["rejected"][0]["content"])["input_ids"] + [tok.eos_token_id]
        rows.append({**pair, "chosen_token_ids": chosen, "rejected_token_ids": rejected, "ref_model": model_path,
                     "ref_chosen_logps": logp(prompt_ids, chosen), "ref_rejected_logps": logp(prompt_ids, rejected)})
    return rows


def manifest(out: Path) -> dict:
    return json.loads(Path(str(out) + ".manifest.json").read_text())


def weights_changed(before: str, after: Path) -> bool:
    from safetensors.torch import load_file

    a, b = load_file(Path(before) / "model.safetensors"), load_file(after / "model.safetensors")
    shared = a.keys() & b.keys()  # a tied lm_head may be saved explicitly (ZeRO-2) or not
    assert shared >= a.keys() - {"lm_head.weight"}
    return any(not a[k].equal(b[k]) for k in shared)


def loads_in_transformers(path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.num_parameters() > 0


def test_plain_scpo_training_saves_a_model_and_logs(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"), "--output_dir", str(out),
             *FAST[:-2], "--report_to", "tensorboard")
    counts = manifest(out)["counts"]
    assert counts["reference"] == "model" and counts["loss_type"] == "scpo"
    assert 0 < counts["weight/mean"] <= 1 and "rewards/margins" in counts and "nll/chosen" in counts
    assert weights_changed(tiny_model, out)
    loads_in_transformers(out)
    assert list((out / "runs").rglob("events.out.tfevents.*"))  # TensorBoard through report_to
    again = run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"),
                     "--output_dir", str(out), *FAST[:-2], "--report_to", "tensorboard")
    assert "up to date" in again.stdout  # the manifest makes a re-run a no-op


def test_sampler_reference_skips_reference_pass_and_loss_is_exact(tmp_path, tiny_model):
    """With the sampler's log-probs the first step's loss is the formula at margin 0: mean w * (log 2 + NLL/|y+|)."""
    rows = sampler_pairs(tiny_model)
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "model"
    run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"), "--output_dir", str(out),
             "--max_steps", "1", "--per_device_train_batch_size", "8", "--report_to", "none", "--beta", "0.5",
             "--alpha", "1.0", "--check_ref_logps", "4", "--save_strategy", "no")
    counts = manifest(out)["counts"]
    assert counts["reference"] == "sampler"
    assert counts["ref_logps_max_abs_diff"] < 1e-3  # the sampler's log-probs are the model's own
    expected = sum(r["weight"] * (math.log(2) - r["ref_chosen_logps"] / len(r["chosen_token_ids"])) for r in rows)
    assert counts["train_loss"] == pytest.approx(expected / len(rows), rel=1e-4)


def test_pairs_sampled_by_another_model_use_a_reference_pass(tmp_path, tiny_model):
    rows = [{**r, "ref_model": "/some/other/model"} for r in sampler_pairs(tiny_model, 4)]
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "model"
    run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"), "--output_dir", str(out),
             *FAST)
    assert manifest(out)["counts"]["reference"] == "model"
    proc = run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"),
                    "--output_dir", str(tmp_path / "o2"), "--reference", "sampler", *FAST, check=False)
    assert proc.returncode == 1 and "not by" in proc.stderr


def test_changed_settings_do_not_resume_old_checkpoints(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    args = ["--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"), "--output_dir", str(out),
            "--max_steps", "2", "--per_device_train_batch_size", "4", "--report_to", "none", "--save_steps", "1"]
    run_scpo("train", *args)
    assert (out / "checkpoint-2").exists()
    proc = run_scpo("train", *args, "--beta", "0.3")  # another configuration: its checkpoints are not ours
    assert "resuming" not in proc.stdout and manifest(out)["counts"]["resumed_from_step"] == 0
    Path(str(out) + ".manifest.json").unlink()  # as if killed after its last checkpoint
    proc = run_scpo("train", *args, "--beta", "0.3")
    assert "resuming" in proc.stdout and manifest(out)["counts"]["resumed_from_step"] == 2


def test_trl_only_options_are_refused_with_our_losses(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs(2))
    proc = run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"),
                    "--output_dir", str(tmp_path / "o"), "--ld_alpha", "0.5", check=False)
    assert proc.returncode == 1 and "ld_alpha" in proc.stderr and "loss: dpo" in proc.stderr


def test_irpo_and_dpo_losses_train(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    for loss in ("irpo", "dpo"):
        out = tmp_path / loss
        run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"),
                 "--output_dir", str(out), "--loss", loss, *FAST)
        assert manifest(out)["counts"]["loss_type"] == loss and weights_changed(tiny_model, out)


def test_lora_saves_adapter_and_merged_copy(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"), "--output_dir", str(out),
             "--use_peft", "true", "--lora_r", "8", "--lora_alpha", "16", "--lora_target_modules", "all-linear",
             "--learning_rate", "1e-3", *FAST)
    assert (out / "adapter" / "adapter_config.json").exists()
    assert not (out / "adapter_config.json").exists()  # the top folder is a plain merged model
    assert weights_changed(tiny_model, out)
    loads_in_transformers(out)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["zero2", "zero3"])
def test_deepspeed_zero_one_process_on_cpu(tmp_path, tiny_model, config):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    proc = run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"),
                    "--output_dir", str(out), "--accelerate_config", config, "--num_processes", "1", *FAST)
    assert "accelerate.commands.launch" in proc.stdout and f"{config}.yaml" in proc.stdout
    assert manifest(out)["counts"]["deepspeed"] is True  # trained by DeepSpeed's engine, not plain torch
    assert weights_changed(tiny_model, out)  # ZeRO-3: full 16-bit weights gathered on save
    loads_in_transformers(out)


@pytest.mark.slow
def test_two_process_gloo_ddp(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"), "--output_dir", str(out),
             "--accelerate_config", "cpu", "--num_processes", "2", "--per_device_train_batch_size", "4",
             "--num_train_epochs", "1", *FAST[4:])
    counts = manifest(out)["counts"]
    assert counts["pairs"] == 8 and counts["processes"] == 2 and weights_changed(tiny_model, out)
    assert counts["global_step"] == 1  # 8 pairs = 2 processes x batch 4: one step (one process would take two)


@pytest.mark.slow
def test_trained_folder_loads_in_vllm(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    run_scpo("train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"), "--output_dir", str(out),
             "--use_peft", "true", "--lora_target_modules", "all-linear", *FAST)
    write_jsonl(tmp_path / "problems.jsonl", [{"id": "a", "prompt": "What is 1 + 1?"}])
    run_scpo("sample", "--model", str(out), "--iter_dir", str(tmp_path), "--k", "2", "--max_tokens", "8",
             "--enforce_eager", "--max_model_len", "256")
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("rows, args, message", [
    ([], [], "no pairs to train on"),
    ([{**p, "weight": 0.0} for p in text_pairs(2)], [], "every pair has weight 0"),
    ([{k: v for k, v in p.items() if k != "rejected"} for p in text_pairs(2)], [], "missing required field 'rejected'"),
    ([{**p, "weight": 1.5} for p in text_pairs(2)], [], "weight 1.5 is outside [0, 1]"),
    (text_pairs(2), ["--accelerate_config", "zero9"], "zero9"),
    (text_pairs(2), ["--model", "/no/such/model"], "does not exist"),
    (text_pairs(2), ["--learning_rat", "1e-5"], "did you mean 'learning_rate'"),
])
def test_bad_input_is_a_clear_error(tmp_path, tiny_model, rows, args, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = [] if "--model" in args else ["--model", tiny_model]
    proc = run_scpo("train", *model, "--pairs_file", str(path), "--output_dir", str(tmp_path / "out"), *args,
                    check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr[-3000:]


def test_accelerate_commands_for_multi_node(monkeypatch):
    """What cannot run here: the exact launch command for node 1 of 2 x 8 GPUs under ZeRO-3."""
    import sys

    from scpo.stages import train
    from scpo.training import launch

    monkeypatch.setattr(launch, "has_gpu", lambda: True)
    s = train.TrainSettings(accelerate_config="zero3", num_processes=16, num_machines=2, machine_rank=1,
                            main_process_ip="node0", main_process_port=29500)
    cmd = launch.launch_command(s, ["--config", "r.yaml"])
    assert cmd == [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                   str(launch.ACCELERATE_DIR / "zero3.yaml"), "--num_processes", "16", "--num_machines", "2",
                   "--machine_rank", "1", "--main_process_ip", "node0", "--main_process_port", "29500",
                   "-m", "scpo.cli", "train", "--config", "r.yaml"]
