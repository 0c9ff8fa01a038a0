"""Checks the sampler's log-probs before they are used as the DPO reference: a small sample of pairs is scored again
with a transformers forward of the model being trained, over the same tokens.

The sampler (vLLM) is the reference model M_t, so its log-probs of the sampled tokens are the reference for free;
but a vLLM engine in bf16, or one that loaded other weights, gives other numbers than the training forward. The
per-token gap |log pi_sampler(y|x) - log pi_train(y|x)| / |y| over the checked sequences (chosen and rejected)
is logged (mean and max); above `ref_logps_tolerance` the stage falls back to TRL's reference pass. The forward
runs in this process before training starts (before the accelerate / DeepSpeed launch), so the check is the same
under ZeRO-2 / ZeRO-3, where the model of a training rank cannot run outside DeepSpeed's engine.
"""

from __future__ import annotations

import gc
import time

from scpo.core.memory import release_freed_memory


def reference_gap(rows: list[dict], model_path: str, dtype: str = "auto", n: int = 16) -> dict:
    """Per-token gaps between the pairs' sampler log-probs and a forward of `model_path` over the first n pairs."""
    from scpo.scoring import SequenceScorer

    t0 = time.time()
    pairs = rows[:n]
    sides = [
        (p["prompt"], p[f"{side}_token_ids"], p[f"ref_{side}_logps"]) for p in pairs for side in ("chosen", "rejected")
    ]
    scorer = SequenceScorer(model_path, dtype=dtype, batch_size=8)
    logps = scorer.logps(
        [{"messages": prompt, "completion_token_ids": ids} for prompt, ids, _ in sides], lambda r: r["messages"]
    )
    del scorer
    gc.collect()
    release_freed_memory()  # the launching process keeps running beside the trainer it starts: 4.7 GB freed but
    # kept (scpo/core/memory.py) at 0.5B, with the trainer's 19.6 GB, filled the 24 GB box and stalled training
    gaps = [abs(sampled - forward) / max(1, len(ids)) for (_, ids, sampled), forward in zip(sides, logps)]
    return {
        "pairs": len(pairs),
        "sequences": len(sides),
        "tokens": sum(len(ids) for _, ids, _ in sides),
        "mean_gap_per_token": round(sum(gaps) / len(gaps), 6) if gaps else 0.0,
        "max_gap_per_token": round(max(gaps), 6) if gaps else 0.0,
        "seconds": round(time.time() - t0, 1),
    }
