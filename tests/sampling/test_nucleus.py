"""The windowed top-p filter against vLLM's own sort: the same number of kept tokens with the same logits per row,
on bf16-rounded logits (many ties), flat rows whose nucleus spills past the window, p = 1 rows and top-k batches."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
ops = pytest.importorskip("vllm.v1.sample.ops.topk_topp_sampler")

from scpo.sampling import nucleus  # noqa: E402


def vllm_sort(logits, k, p):
    return getattr(ops, "_scpo_sort_filter", ops.apply_top_k_top_p_pytorch)(logits, k, p, True)


def logits_and_p(rows: int = 64, vocab: int = 4096, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, vocab, generator=g) * 2
    logits[:, :12] += torch.linspace(10, 3, 12)  # a peaked head, as a language model's
    logits[:4] = torch.randn(4, vocab, generator=g) * 0.05  # flat: the nucleus holds most of the vocabulary
    logits = (logits / 0.7).to(torch.bfloat16).float()  # bf16 logits: ties everywhere
    p = torch.rand(rows, generator=g) * 0.98 + 0.01
    p[6:9] = 1.0
    return logits, p


def kept(filtered):
    return torch.isfinite(filtered)


def test_window_keeps_what_vllm_sort_keeps():
    logits, p = logits_and_p()
    expected = vllm_sort(logits.clone(), None, p)
    for window in (1, 16, 256):
        got = nucleus.nucleus_filter(logits.clone(), None, p, window, vllm_sort)
        assert torch.equal(kept(got).sum(1), kept(expected).sum(1)), window
        # the same kept logits, unchanged; everything else -inf
        assert torch.equal(got.sort(-1, descending=True).values, expected.sort(-1, descending=True).values)
        # no holes: a token above the smallest kept logit is kept
        smallest = torch.where(kept(got), logits, torch.inf).min(-1, keepdim=True).values
        assert bool((kept(got) | (logits <= smallest)).all())
    assert int(kept(expected)[:4].sum(1).max()) > 256  # a flat row did spill past the largest window
    assert bool(kept(got)[6:9].all())  # p = 1: every token


def test_top_k_batches_and_no_top_p_go_to_vllm():
    logits, p = logits_and_p(seed=1)
    k = torch.full((logits.shape[0],), 5)
    for args in ((k, p), (k, None), (None, None)):
        got = nucleus.nucleus_filter(logits.clone(), *args, window=256, sort_filter=vllm_sort)
        assert torch.equal(kept(got), kept(vllm_sort(logits.clone(), *args))), args


def test_install_routes_vllm_cpu_top_p_and_window_0_restores_it():
    logits, p = logits_and_p(seed=2)
    try:
        assert nucleus.install(256)
        got = ops.apply_top_k_top_p(logits.clone(), None, p)
        assert torch.equal(kept(got).sum(1), kept(vllm_sort(logits.clone(), None, p)).sum(1))
        assert ops.apply_top_k_top_p_pytorch is not ops._scpo_sort_filter
    finally:
        assert not nucleus.install(0)
    assert ops.apply_top_k_top_p_pytorch is ops._scpo_sort_filter
