"""Top-p (nucleus) filtering without sorting the vocabulary, for vLLM's CPU sampler: the nucleus vLLM keeps, found
with a tenth of the work.

vLLM-CPU filters top-p by sorting every row of logits over the whole vocabulary
(vllm/v1/sample/ops/topk_topp_sampler.py: apply_top_k_top_p_pytorch). With SmolLM2's 49,152 tokens that sort was
36% of `scpo eval`'s time on the CPU demo, as much as the model's forward (py-spy, 2 cores): 659 ms for a 256-row
step, against 57 ms here. The nucleus of a top-p of 0.9 holds a handful of tokens: it is found among each row's
`window` largest logits (torch.topk), with the softmax denominator taken over the whole vocabulary (logsumexp), so
every probability is the full one.

The rule is vLLM's: it masks the tokens whose ascending cumulative probability is <= 1 - p and always keeps the
most likely one; that is, a token is kept when the tokens ranked above it hold less than p. Each row keeps as many
tokens as vLLM's sort keeps, with the same logits (tests/sampling/test_nucleus.py). Where several tokens tie at the
nucleus' edge (common with bf16 logits) the ones kept may be others: torch's CPU sort is not stable, so vLLM's
choice among them is arbitrary too. On the CPU demo's eval, 36 of 2,160 completions differed from vLLM's sort, and
the accuracy stayed within its standard error. Rows whose nucleus may reach past the window (its last token is still
kept), and any batch with top-k, go through vLLM's own sort; rows with p >= 1 keep every token (vLLM's sort masks
only tokens of probability 0 in float32, which no sampler draws). The same idea as vLLM pull request 48913 (a top-N
window with a full logsumexp; open in 2026-07).
"""

from __future__ import annotations

import sys

DEFAULT_WINDOW = 256  # candidates per row: 64, 256 and 1024 gave the same eval time on the CPU demo (73 s)


def nucleus_filter(logits, k, p, window: int, sort_filter):
    """vLLM's `apply_top_k_top_p_pytorch(logits, k, p)` for top-p alone, from each row's `window` largest logits;
    `sort_filter` is vLLM's function, used where the window cannot decide. Modifies and returns `logits`."""

    if p is None or k is not None or not 0 < window < logits.shape[-1]:
        return sort_filter(logits, k, p)
    top_logits, top_ids = logits.topk(window, dim=-1)  # descending
    probs = (top_logits - logits.logsumexp(dim=-1, keepdim=True)).exp()
    above = probs.cumsum(dim=-1) - probs  # the probability of the tokens ranked above each candidate
    keep = above < p.unsqueeze(1)
    keep[:, 0] = True
    spills = keep[:, -1] & (p < 1)  # the nucleus may go on past the window
    whole = p >= 1
    spilled = sort_filter(logits[spills].clone(), None, p[spills]) if bool(spills.any()) else None
    unfiltered = logits[whole].clone() if bool(whole.any()) else None
    logits.fill_(float("-inf")).scatter_(1, top_ids, top_logits.masked_fill_(~keep, float("-inf")))
    if spilled is not None:
        logits[spills] = spilled
    if unfiltered is not None:
        logits[whole] = unfiltered
    return logits


def install(window: int = DEFAULT_WINDOW) -> bool:
    """Routes vLLM's CPU top-p through `nucleus_filter` in this process (window 0: vLLM's own sort). Returns whether
    it is installed; a vLLM without the expected function is left alone, with a note."""
    try:
        from vllm.v1.sample.ops import topk_topp_sampler as ops
    except ImportError:
        return False
    sort_filter = getattr(ops, "_scpo_sort_filter", None) or getattr(ops, "apply_top_k_top_p_pytorch", None)
    if sort_filter is None:
        print("[vllm] this vLLM has no apply_top_k_top_p_pytorch: its own top-p filter is used", file=sys.stderr)
        return False
    ops._scpo_sort_filter = sort_filter
    if window <= 0:
        ops.apply_top_k_top_p_pytorch = sort_filter
        return False

    def apply_top_k_top_p_pytorch(logits, k, p, allow_cpu_sync: bool = False):
        if not allow_cpu_sync:  # a GPU batch: vLLM's own (no host sync there)
            return sort_filter(logits, k, p, allow_cpu_sync)
        return nucleus_filter(logits, k, p, window, lambda lg, kk, pp: sort_filter(lg, kk, pp, True))

    ops.apply_top_k_top_p_pytorch = apply_top_k_top_p_pytorch
    return True
