"""The training stage on a tiny model, for real: TRL's DPOTrainer, accelerate, DeepSpeed ZeRO, PEFT."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from helpers import PARITY_TASK, run_scpo, write_jsonl

from scpo.core.settings import set_settings

FAST = [
    "--max_steps",
    "2",
    "--per_device_train_batch_size",
    "4",
    "--report_to",
    "none",
    "--logging_steps",
    "1",
    "--beta",
    "0.5",
    "--save_strategy",
    "no",
]


def text_pairs(n: int = 8) -> list[dict]:
    return [
        {
            "id": i,
            "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "chosen": [{"role": "assistant", "content": f"{i} + {i} = {2 * i}. The answer is {2 * i}."}],
            "rejected": [{"role": "assistant", "content": f"The answer is {2 * i + 1}."}],
            "weight": [0.25, 0.5, 0.75, 1.0][i % 4],
            "chosen_votes": 5,
            "rejected_votes": 1,
            "k": 8,
        }
        for i in range(n)
    ]


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
        return lp[len(prompt_ids) - 1 :][torch.arange(len(ids)), x[0, len(prompt_ids) :]].sum().item()

    rows = []
    for pair in text_pairs(n):
        prompt_ids = list(
            tok.apply_chat_template(pair["prompt"], add_generation_prompt=True, tokenize=True)["input_ids"]
        )
        chosen = tok(pair["chosen"][0]["content"])["input_ids"] + [tok.eos_token_id]
        rejected = tok(pair["rejected"][0]["content"])["input_ids"] + [tok.eos_token_id]
        rows.append(
            {
                **pair,
                "chosen_token_ids": chosen,
                "rejected_token_ids": rejected,
                "ref_model": model_path,
                "ref_chosen_logps": logp(prompt_ids, chosen),
                "ref_rejected_logps": logp(prompt_ids, rejected),
            }
        )
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


@pytest.mark.slow  # scpo in a subprocess
def test_plain_scpo_training_saves_a_model_and_logs(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(out),
        *set_settings(FAST[:-2], report_to="tensorboard"),  # the default save_strategy
    )
    counts = manifest(out)["counts"]
    assert counts["reference"] == "model" and counts["loss_type"] == "scpo"
    assert 0 < counts["weight/mean"] <= 1 and "rewards/margins" in counts and "nll/chosen" in counts
    assert weights_changed(tiny_model, out)
    loads_in_transformers(out)
    assert list((out / "runs").rglob("events.out.tfevents.*"))  # TensorBoard through report_to
    again = run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(out),
        *set_settings(FAST[:-2], report_to="none", run_name="renamed"),  # only its name and logging differ
    )
    assert "up to date" in again.stdout  # the manifest makes a re-run a no-op, under another run name too


@pytest.mark.slow  # scpo in a subprocess
def test_sampler_reference_skips_reference_pass_and_loss_is_exact(tmp_path, tiny_model):
    """With the sampler's log-probs the first step's loss is the formula at margin 0: mean w * (log 2 + NLL/|y+|)."""
    rows = sampler_pairs(tiny_model)
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "model"
    run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(out),
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "8",
        "--report_to",
        "none",
        "--beta",
        "0.5",
        "--alpha",
        "1.0",
        "--check_ref_logps",
        "4",
        "--save_strategy",
        "no",
    )
    counts = manifest(out)["counts"]
    assert counts["reference"] == "sampler" and "reference_fallback" not in counts
    check = counts["ref_logps_check"]
    assert check["pairs"] == 4 and check["sequences"] == 8 and check["tokens"] > 8
    assert check["max_gap_per_token"] < 1e-5  # the sampler's log-probs are the model's own
    expected = sum(r["weight"] * (math.log(2) - r["ref_chosen_logps"] / len(r["chosen_token_ids"])) for r in rows)
    assert counts["train_loss"] == pytest.approx(expected / len(rows), rel=1e-4)


@pytest.mark.parametrize(
    "native, recipe, cli, expected",
    [
        (True, {"bf16": True}, {}, True),  # a CPU with AVX512-BF16 / AMX: autocast
        (False, {"bf16": True}, {}, False),  # emulated bf16 would be slower than float32
        (True, {"bf16": True, "accelerate_config": "zero2"}, {}, False),  # DeepSpeed's bf16 is another mode
        (True, {"bf16": True}, {"bf16": "false"}, False),  # the command line wins
        (True, {}, {}, False),  # TRL's default (bf16) is not a request: float32
    ],
)
def test_cpu_precision_autocasts_bf16_only_where_asked_and_native(monkeypatch, native, recipe, cli, expected):
    from scpo.core import devices
    from scpo.training.launch import cpu_precision

    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: native)
    ours = dict(recipe)
    cpu_precision(ours, dict(cli), "train")
    assert ours["bf16"] is expected and ours["fp16"] is False and ours.get("use_cpu", False) is expected


@pytest.mark.slow  # scpo in a subprocess
def test_bf16_on_this_cpu_trains_under_autocast(tmp_path, tiny_model):
    """The first step's loss under bf16 autocast is the float32 one within bf16's precision, and not the same."""
    from scpo.core.devices import cpu_has_bf16

    if not cpu_has_bf16():
        pytest.skip("this CPU has no native bf16: scpo trains in float32 (the parametrized test above)")
    rows = sampler_pairs(tiny_model, 4)
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    losses = {}
    for bf16 in ("false", "true"):
        out = tmp_path / f"model_{bf16}"
        proc = run_scpo(
            "train",
            "--model",
            tiny_model,
            "--pairs_file",
            str(tmp_path / "pairs.jsonl"),
            "--output_dir",
            str(out),
            "--max_steps",
            "1",
            "--per_device_train_batch_size",
            "4",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--check_ref_logps",
            "0",
            "--bf16",
            bf16,
        )
        assert ("bf16 autocast" in proc.stderr) is (bf16 == "true")
        assert manifest(out)["config"]["training"]["bf16"] is (bf16 == "true")
        losses[bf16] = manifest(out)["counts"]["train_loss"]
    assert losses["true"] != losses["false"] and losses["true"] == pytest.approx(losses["false"], rel=0.05)


@pytest.mark.slow  # scpo in a subprocess
def test_sampler_log_probs_that_are_not_the_models_fall_back_to_a_reference_pass(tmp_path, tiny_model):
    """A reference that is off by more than ref_logps_tolerance per token is not trained on: TRL's pass runs."""
    rows = sampler_pairs(tiny_model, 4)
    write_jsonl(
        tmp_path / "pairs.jsonl",
        [{**r, "ref_chosen_logps": r["ref_chosen_logps"] - 0.3 * len(r["chosen_token_ids"])} for r in rows],
    )
    out = tmp_path / "model"
    proc = run_scpo(
        "train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"), "--output_dir", str(out), *FAST
    )
    counts = manifest(out)["counts"]
    assert counts["reference"] == "model" and counts["reference_fallback"] is True
    assert counts["ref_logps_check"]["max_gap_per_token"] == pytest.approx(0.3, abs=0.01)  # tolerance 0.1
    assert "falling back to TRL's reference pass" in proc.stderr


@pytest.mark.slow  # scpo in a subprocess
def test_pairs_sampled_by_another_model_use_a_reference_pass(tmp_path, tiny_model):
    rows = [{**r, "ref_model": "/some/other/model"} for r in sampler_pairs(tiny_model, 4)]
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "model"
    run_scpo(
        "train", "--model", tiny_model, "--pairs_file", str(tmp_path / "pairs.jsonl"), "--output_dir", str(out), *FAST
    )
    assert manifest(out)["counts"]["reference"] == "model"
    proc = run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(tmp_path / "o2"),
        "--reference",
        "sampler",
        *FAST,
        check=False,
    )
    assert proc.returncode == 1 and "not by" in proc.stderr


@pytest.mark.slow  # scpo in a subprocess
def test_changed_settings_do_not_resume_old_checkpoints(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    args = [
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "4",
        "--report_to",
        "none",
        "--save_steps",
        "1",
    ]
    run_scpo("train", *args)
    assert (out / "checkpoint-2").exists()
    proc = run_scpo("train", *args, "--beta", "0.3")  # another configuration: its checkpoints are not ours
    assert "resuming" not in proc.stdout and manifest(out)["counts"]["resumed_from_step"] == 0
    Path(str(out) + ".manifest.json").unlink()  # as if killed after its last checkpoint
    proc = run_scpo("train", *args, "--beta", "0.3")
    assert "resuming" in proc.stdout and manifest(out)["counts"]["resumed_from_step"] == 2


@pytest.mark.slow  # scpo in a subprocess
def test_trl_only_options_are_refused_with_our_losses(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs(2))
    proc = run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(tmp_path / "o"),
        "--ld_alpha",
        "0.5",
        check=False,
    )
    assert proc.returncode == 1 and "ld_alpha" in proc.stderr and "loss: dpo" in proc.stderr


@pytest.mark.slow  # scpo in a subprocess
def test_irpo_and_dpo_losses_train(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    for loss in ("irpo", "dpo"):
        out = tmp_path / loss
        run_scpo(
            "train",
            "--model",
            tiny_model,
            "--pairs_file",
            str(tmp_path / "pairs.jsonl"),
            "--output_dir",
            str(out),
            "--loss",
            loss,
            *FAST,
        )
        assert manifest(out)["counts"]["loss_type"] == loss and weights_changed(tiny_model, out)


@pytest.mark.slow  # scpo in a subprocess
def test_lora_saves_adapter_and_merged_copy(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(out),
        "--use_peft",
        "true",
        "--lora_r",
        "8",
        "--lora_alpha",
        "16",
        "--lora_target_modules",
        "all-linear",
        "--learning_rate",
        "1e-3",
        *FAST,
    )
    assert (out / "adapter" / "adapter_config.json").exists()
    assert not (out / "adapter_config.json").exists()  # the top folder is a plain merged model
    assert weights_changed(tiny_model, out)
    loads_in_transformers(out)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["zero2", "zero3"])
def test_deepspeed_zero_one_process_on_cpu(tmp_path, tiny_model, config):
    write_jsonl(tmp_path / "pairs.jsonl", sampler_pairs(tiny_model))
    out = tmp_path / "model"
    proc = run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(out),
        "--accelerate_config",
        config,
        "--num_processes",
        "1",
        *FAST,
    )
    assert "accelerate.commands.launch" in proc.stdout and f"{config}.yaml" in proc.stdout
    counts = manifest(out)["counts"]
    assert counts["deepspeed"] is True  # trained by DeepSpeed's engine, not plain torch
    # the reference check ran before the launch, and the training ranks trained on the sampler's log-probs
    assert counts["reference"] == "sampler" and counts["ref_logps_check"]["max_gap_per_token"] < 1e-5
    assert weights_changed(tiny_model, out)  # ZeRO-3: full 16-bit weights gathered on save
    loads_in_transformers(out)


@pytest.mark.slow
def test_two_process_gloo_ddp(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(out),
        "--accelerate_config",
        "cpu",
        "--num_processes",
        "2",
        "--per_device_train_batch_size",
        "4",
        "--num_train_epochs",
        "1",
        *FAST[4:],
    )
    counts = manifest(out)["counts"]
    assert counts["pairs"] == 8 and counts["processes"] == 2 and weights_changed(tiny_model, out)
    assert counts["global_step"] == 1  # 8 pairs = 2 processes x batch 4: one step (one process would take two)


@pytest.mark.slow
def test_trained_folder_loads_in_vllm(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    out = tmp_path / "model"
    run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(out),
        "--use_peft",
        "true",
        "--lora_target_modules",
        "all-linear",
        *FAST,
    )
    write_jsonl(tmp_path / "problems.jsonl", [{"id": "a", "prompt": "What is 1 + 1?"}])
    run_scpo(
        "sample",
        "--model",
        str(out),
        "--iter_dir",
        str(tmp_path),
        "--k",
        "2",
        "--max_tokens",
        "8",
        "--enforce_eager",
        "--max_model_len",
        "256",
    )
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow  # scpo in a subprocess
@pytest.mark.parametrize(
    "rows, args, message",
    [
        ([], [], "no pairs to train on"),
        ([{**p, "weight": 0.0} for p in text_pairs(2)], [], "every pair has weight 0"),
        (
            [{k: v for k, v in p.items() if k != "rejected"} for p in text_pairs(2)],
            [],
            "missing required field 'rejected'",
        ),
        ([{**p, "weight": 1.5} for p in text_pairs(2)], [], "weight 1.5 is outside [0, 1]"),
        (text_pairs(2), ["--accelerate_config", "zero9"], "zero9"),
        (text_pairs(2), ["--model", "/no/such/model"], "does not exist"),
        (text_pairs(2), ["--learning_rat", "1e-5"], "did you mean 'learning_rate'"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, tiny_model, rows, args, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = [] if "--model" in args else ["--model", tiny_model]
    proc = run_scpo(
        "train", *model, "--pairs_file", str(path), "--output_dir", str(tmp_path / "out"), *args, check=False
    )
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr[-3000:]


def test_accelerate_commands_for_multi_node(monkeypatch):
    """What cannot run here: the exact launch command for node 1 of 2 x 8 GPUs under ZeRO-3."""
    import sys

    from scpo.stages import train
    from scpo.training import launch

    monkeypatch.setattr(launch, "has_gpu", lambda: True)
    s = train.TrainSettings(
        accelerate_config="zero3",
        num_processes=16,
        num_machines=2,
        machine_rank=1,
        main_process_ip="node0",
        main_process_port=29500,
    )
    cmd = launch.launch_command(s, ["--config", "r.yaml"])
    assert cmd == [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(launch.ACCELERATE_DIR / "zero3.yaml"),
        "--num_processes",
        "16",
        "--num_machines",
        "2",
        "--machine_rank",
        "1",
        "--main_process_ip",
        "node0",
        "--main_process_port",
        "29500",
        "-m",
        "scpo.cli",
        "train",
        "--config",
        "r.yaml",
    ]


PARITY_DEV = [{"id": f"d{i}", "prompt": f"Say something about {i}.", "gold": str(i % 2)} for i in range(6)]


def selection_args(tmp_path, tiny_model, out, *extra):
    (tmp_path / "parity_task.py").write_text(PARITY_TASK)
    write_jsonl(tmp_path / "pairs.jsonl", text_pairs())
    write_jsonl(tmp_path / "dev.jsonl", PARITY_DEV)
    return [
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(out),
        "--select_checkpoint",
        "dev",
        "--dev_file",
        str(tmp_path / "dev.jsonl"),
        "--num_train_epochs",
        "3",
        "--per_device_train_batch_size",
        "4",
        "--learning_rate",
        "5e-3",
        "--report_to",
        "none",
        "--beta",
        "0.5",
        "--task",
        "parity_task:WordParity",
        "--backend",
        "hf",
        "--max_tokens",
        "8",
        "--dtype",
        "float32",
        *extra,
    ]


@pytest.mark.slow
def test_dev_selection_keeps_the_best_epoch_and_resumes_without_redoing_work(tmp_path, tiny_model):
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"}
    out = tmp_path / "model"
    args = selection_args(tmp_path, tiny_model, out, "--keep_checkpoints", "true")
    proc = subprocess.Popen(
        [sys.executable, "-m", "scpo.cli", "train", *args],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_eval = out / "selection" / "epoch-1" / "eval.json"
    deadline = time.time() + 600
    while not first_eval.with_name("eval.json.manifest.json").exists():  # epoch 1's evaluation is finished
        assert proc.poll() is None and time.time() < deadline, "the selection ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # during the dev evaluations
    proc.wait()
    trained = (out / "selection" / "trained.json").stat().st_mtime_ns
    weights = {p: p.stat().st_mtime_ns for p in out.glob("checkpoint-*/model.safetensors")}
    evaluated = first_eval.stat().st_mtime_ns
    assert len(weights) == 3 and not Path(str(out) + ".manifest.json").exists()

    again = run_scpo("train", *args, env=env)
    assert "resuming" not in again.stdout  # the epochs were not trained again ...
    assert (out / "selection" / "trained.json").stat().st_mtime_ns == trained
    assert {p: p.stat().st_mtime_ns for p in out.glob("checkpoint-*/model.safetensors")} == weights
    assert first_eval.stat().st_mtime_ns == evaluated  # ... nor the first epoch evaluated again
    counts = manifest(out)["counts"]
    curve = counts["dev_curve"]
    assert [e["epoch"] for e in curve] == [1, 2, 3] and counts["select_metric"] == "greedy"
    assert counts["train_loss"] > 0 and counts["global_step"] == curve[-1]["step"]  # the report's train columns
    values = [e["value"] for e in curve]
    assert counts["selected_epoch"] == 1 + values.index(max(values))  # the best, the earliest among equals
    for e in curve:  # each value is that epoch's dev evaluation
        assert (
            json.loads((out / "selection" / f"epoch-{e['epoch']}" / "eval.json").read_text())["greedy"]["mean"]
            == e["value"]
        )
    from safetensors.torch import load_file

    chosen = load_file(out / f"checkpoint-{counts['selected_step']}" / "model.safetensors")
    installed = load_file(out / "model.safetensors")
    assert chosen.keys() == installed.keys() and all(chosen[k].equal(installed[k]) for k in chosen)
    assert not (out / f"checkpoint-{curve[0]['step']}" / "optimizer.pt").exists()  # older epochs: weights only
    assert "up to date" in run_scpo("train", *args, env=env).stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (["dev_file", "none"], "select_checkpoint=dev needs dev_file"),
        (["num_train_epochs", "0"], "needs a whole num_train_epochs >= 1"),
        (["num_train_epochs", "2.5"], "needs a whole num_train_epochs >= 1 (now 2.5)"),
        (["select_metric", "pass@1"], "select_metric='pass@1'"),
    ],
)
def test_dev_selection_bad_settings_are_named_errors(tmp_path, tiny_model, extra, message):
    from scpo.core.errors import ScpoError
    from scpo.stages import train

    with pytest.raises(ScpoError, match=re.escape(message)):
        train.main(
            set_settings(selection_args(tmp_path, tiny_model, tmp_path / "m"), **dict(zip(extra[::2], extra[1::2])))
        )


def test_dev_selection_needs_gold_in_the_dev_file(tmp_path, tiny_model):
    from scpo.core.errors import ScpoError
    from scpo.stages import train

    args = selection_args(tmp_path, tiny_model, tmp_path / "m")
    write_jsonl(tmp_path / "dev.jsonl", [{"id": "d0", "prompt": "no gold here"}])
    with pytest.raises(ScpoError, match="missing required field 'gold'"):
        train.main(args)
