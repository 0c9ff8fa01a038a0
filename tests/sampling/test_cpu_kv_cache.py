"""The CPU KV cache scpo asks vLLM for: max_num_seqs sequences of max_model_len tokens (scpo/sampling/vllm_engine.py).

vLLM-CPU otherwise takes 0.3 of host RAM and zeroes it at every engine start (38 s of the demo eval's start).
"""

from __future__ import annotations

import json

import pytest

from scpo.sampling import vllm_engine


@pytest.fixture
def cpu(monkeypatch):
    monkeypatch.setattr(vllm_engine, "on_cpu", lambda: True)
    # engine_kwargs sets vLLM-CPU's process layout in the environment: kept to this test
    for name in ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU"):
        monkeypatch.setenv(name, "0")


def model_dir(tmp_path, **config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


def test_kv_cache_is_what_the_engine_can_use_at_once(cpu, tmp_path):
    # SmolLM2-135M's shape: 30 layers, 3 KV heads of 64 dims (hidden 576 / 9 heads)
    model = model_dir(tmp_path, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576)
    per_token = 2 * 30 * 3 * 64  # K and V, every layer, every KV head
    got = vllm_engine.engine_kwargs(model, dtype="bfloat16", max_model_len=256)
    assert got["kv_cache_memory_bytes"] == 256 * 256 * per_token * 2
    got = vllm_engine.engine_kwargs(model, dtype="float32", max_model_len=256, vllm_kwargs={"max_num_seqs": 8})
    assert got["kv_cache_memory_bytes"] == 8 * 256 * per_token * 4


def test_kv_cache_left_to_vllm_without_a_length_or_when_set(cpu, tmp_path):
    model = model_dir(tmp_path, num_hidden_layers=2, num_attention_heads=4, hidden_size=64, max_position_embeddings=512)
    assert "kv_cache_memory_bytes" not in vllm_engine.engine_kwargs(model, dtype="float32")
    got = vllm_engine.engine_kwargs(
        model, dtype="float32", max_model_len=128, vllm_kwargs={"kv_cache_memory_bytes": 12345}
    )
    assert got["kv_cache_memory_bytes"] == 12345  # the user's value wins


def test_kv_cache_never_above_the_ram_share_nor_guessed(cpu, tmp_path):
    (tmp_path / "big").mkdir(), (tmp_path / "unknown").mkdir()
    big = model_dir(tmp_path / "big", num_hidden_layers=80, num_attention_heads=64, hidden_size=8192)
    assert "kv_cache_memory_bytes" not in vllm_engine.engine_kwargs(big, dtype="bfloat16", max_model_len=131072)
    unknown = model_dir(tmp_path / "unknown", hidden_size=8)  # no layer or head count: vLLM's own sizing
    assert "kv_cache_memory_bytes" not in vllm_engine.engine_kwargs(unknown, dtype="bfloat16", max_model_len=64)
