"""Responses embedded per second by the `semantic` labeler's voter vs a plain one-at-a-time sentence-embedding loop.

    python benchmarks/bench_semantic.py --samples SAMPLES.jsonl [--responses 500] [--model all-minilm-l6-v2]

Both sides use the same encoder object (loaded once, before any timing) on the same real responses, grouped by
prompt as the labeler sees them. scpo: `SoftVoter.votes` (every text of the call in length-sorted batches of
`semantic_batch_size` under inference_mode, one matrix product per prompt, soft votes). Baseline: what a user
writes from a model card: for each response, tokenize it, run the model, mean-pool, normalise (torch.no_grad), then
the cosines of each prompt's vectors. The two must agree (the largest soft-vote difference is printed); the best
of `--repeats` timings of each is compared, printed as a ratio of wall time and of this process's CPU time (on a
machine shared with other work, run it with OMP_NUM_THREADS=1: the CPU time is then the cost on an idle core).
"""

from __future__ import annotations

import argparse
import time

from scpo.core.io import read_rows
from scpo.core.rows import group_by_prompt
from scpo.semantic import SemanticSettings, SoftVoter
from scpo.soft_votes import soft_votes


def naive(embedder, groups: list[list[str]]) -> list[list[float]]:
    import torch

    tokenizer, model = embedder.tokenizer, embedder.model
    out = []
    with torch.no_grad():
        for texts in groups:
            vectors = []
            for text in texts:
                batch = tokenizer(text, truncation=True, max_length=embedder.max_length, return_tensors="pt")
                hidden = model(**batch).last_hidden_state[0]
                vectors.append(torch.nn.functional.normalize(hidden.mean(dim=0), dim=0))
            stacked = torch.stack(vectors)
            out.append(soft_votes((stacked @ stacked.T).double().tolist(), "centroid", cosine=True))
    return out


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def best_of(repeats: int, fn):
    """(best wall seconds, best CPU seconds of this process, result): on a shared machine the CPU time is the cost."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", required=True, help="a samples file (id, prompt, completion)")
    parser.add_argument("--responses", type=int, default=500, help="the first N responses (whole prompts)")
    parser.add_argument("--model", default="all-minilm-l6-v2")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    groups = []
    for rows in group_by_prompt(read_rows(args.samples, required={"id": (str, int), "completion": str})).values():
        if sum(map(len, groups)) + len(rows) > args.responses:
            break
        groups.append([r["completion"] for r in rows])
    n = sum(map(len, groups))
    voter = SoftVoter(
        SemanticSettings(semantic_model=args.model, semantic_batch_size=args.batch_size, semantic_device="cpu")
    )
    embedder = voter.embedder  # loaded before any timing, shared by both sides
    voter.votes(groups[:1])  # warm-up
    naive(embedder, groups[:1])
    scpo_s, scpo_cpu, ours = best_of(args.repeats, lambda: voter.votes(groups))
    naive_s, naive_cpu, theirs = best_of(args.repeats, lambda: naive(embedder, groups))
    difference = max(abs(a - b) for g1, g2 in zip(ours, theirs) for a, b in zip(g1, g2))
    chars = sum(len(t) for g in groups for t in g)
    result = {
        "responses": n,
        "prompts": len(groups),
        "mean_chars": round(chars / n),
        "model": embedder.path,
        "max_length": embedder.max_length,
        "torch_threads": torch_threads(),
        "scpo_per_s": round(n / scpo_s, 1),
        "naive_per_s": round(n / naive_s, 1),
        "ratio": round(naive_s / scpo_s, 2),
        "scpo_per_cpu_s": round(n / scpo_cpu, 1),
        "naive_per_cpu_s": round(n / naive_cpu, 1),
        "cpu_ratio": round(naive_cpu / scpo_cpu, 2),
        "max_vote_difference": float(f"{difference:.2e}"),
    }
    print(
        f"{n} responses ({len(groups)} prompts, {result['mean_chars']} chars on average), {embedder.path}, "
        f"{result['torch_threads']} torch thread(s)"
    )
    print("                                       responses/s (wall)  responses per CPU-second")
    print(
        f"  scpo labeler (batched {args.batch_size}, length-sorted): {result['scpo_per_s']:10.1f} "
        f"{result['scpo_per_cpu_s']:20.1f}"
    )
    print(f"  plain loop (one at a time):           {result['naive_per_s']:10.1f} {result['naive_per_cpu_s']:20.1f}")
    print(
        f"  ratio: {result['ratio']}x wall, {result['cpu_ratio']}x CPU time; largest soft-vote difference "
        f"{difference:.1e}"
    )
    return result


if __name__ == "__main__":
    main()
