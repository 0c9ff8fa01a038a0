"""The embedded model folder, the tiny test model, and model path errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_scpo


def test_embedded_folder_is_a_plain_consistent_model(embedded_model):
    from transformers import AutoTokenizer

    config = json.loads((Path(embedded_model) / "config.json").read_text())
    assert "quantization_config" not in config  # TRL and vLLM refuse a folder still flagged as GGUF-quantized
    tok = AutoTokenizer.from_pretrained(embedded_model)
    # A turn ends with <|im_end|>: tokenizer, config and generation config must agree, or TRL rewrites the
    # trained model's eos and generation does not stop at the end of a turn.
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == config["eos_token_id"] == 2
    assert tok.pad_token_id == 2
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert chat.endswith("<|im_start|>assistant\n")


@pytest.mark.slow  # scpo in a subprocess
def test_model_show_and_missing_paths(tmp_path, tiny_model):
    shown = run_scpo("model", "show", "--model", tiny_model)
    assert json.loads(shown.stdout)["layers"] == 2
    missing = run_scpo("model", "show", "--model", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "never downloads" in missing.stderr
    (tmp_path / "empty").mkdir()
    not_hf = run_scpo("model", "show", "--model", str(tmp_path / "empty"), check=False)
    assert not_hf.returncode == 1 and "no config.json" in not_hf.stderr


def test_tiny_model_is_small_and_shares_the_tokenizer(tiny_model, embedded_model):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model)
    assert config.num_hidden_layers == 2 and config.hidden_size // config.num_attention_heads == 64
    assert (
        AutoTokenizer.from_pretrained(tiny_model).get_vocab()
        == AutoTokenizer.from_pretrained(embedded_model).get_vocab()
    )
