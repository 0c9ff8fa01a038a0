"""GRPO step time: `scpo grpo` generating with transformers against generating with vLLM (TRL's colocate mode),
same prompts, model and settings, in one run; rollouts/s for both and the roofline line.

    OMP_NUM_THREADS=1 python benchmarks/bench_grpo.py [--steps 6] [--prompts_per_step 2] [--n_votes 8]
                                                      [--max_completion_length 16] [--backends hf,vllm]
                                                      [--problems_file F] [--instruction TEXT]

Each backend runs `scpo grpo` on the embedded model and the CPU demo's prompts (recipes/grpo_cpu_demo.yaml's
settings, TTRL's majority reward) for `--steps` steps; the step time is TRL's `step_time` from the run's log
(generation, rewards and the optimizer step), the median over the steps after the first (warm-up; vLLM's engine
start is outside every step). The roofline line counts a step's FLOPs as 2 x parameters per generated token
plus 6 x parameters per trained token (prompt and completion), against a torch matmul in float32 (the
training dtype on CPU) with the same threads.
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


def run(backend: str, out: Path, args) -> dict:
    rollouts = args.prompts_per_step * args.n_votes
    command = [
        sys.executable,
        "-m",
        "scpo.cli",
        "grpo",
        "--config",
        str(ROOT / "recipes" / "grpo_cpu_demo.yaml"),
        "--output_dir",
        str(out),
        "--max_steps",
        str(args.steps),
        "--eval_file",
        "null",
        "--n_votes",
        str(args.n_votes),
        "--n_samples",
        str(args.n_votes),
        "--per_device_train_batch_size",
        str(rollouts),
        "--max_completion_length",
        str(args.max_completion_length),
        "--report_to",
        "none",
    ]
    if args.problems_file:
        command += ["--problems_file", args.problems_file]
    if args.instruction is not None:
        command += ["--task_options", json.dumps({"instruction": args.instruction})]
    if backend == "vllm":
        command += ["--use_vllm", "true", "--vllm_mode", "colocate"]
    start = time.perf_counter()
    proc = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    )
    wall = time.perf_counter() - start
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    log = [json.loads(line) for line in (out / "grpo_log.jsonl").read_text().splitlines()]
    steps = [e for e in log if "step_time" in e]
    times = [e["step_time"] for e in steps[1:]] or [e["step_time"] for e in steps]
    trained = [b["num_tokens"] - a["num_tokens"] for a, b in zip(steps, steps[1:])] or [steps[0]["num_tokens"]]
    generated = statistics.mean(e["completions/mean_length"] for e in steps) * rollouts
    return {
        "step_s": statistics.median(times),
        "rollouts_per_s": rollouts / statistics.median(times),
        "wall_s": wall,
        "trained_tokens": statistics.mean(trained),
        "generated_tokens": generated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--prompts_per_step", type=int, default=2)
    parser.add_argument("--n_votes", type=int, default=8)
    parser.add_argument("--max_completion_length", type=int, default=16)
    parser.add_argument("--backends", default="hf,vllm")
    parser.add_argument("--problems_file", default=None, help="default: the CPU demo's (single-digit additions)")
    parser.add_argument("--instruction", default=None, help="the task's instruction (default: the demo's)")
    args = parser.parse_args()

    from scpo.core.models import prepare_embedded

    params = parameters(str(prepare_embedded()))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            results[backend] = run(backend, Path(tmp) / backend, args)
    threads = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
    peak = matmul_peak("float32", threads)
    print(
        f"\nscpo grpo, embedded SmolLM2-135M, {args.prompts_per_step} prompts x {args.n_votes} rollouts per step, "
        f"<= {args.max_completion_length} tokens, {args.steps} steps, {args.problems_file or 'the CPU demo prompts'}"
    )
    print(f"{'generation':<14} {'step s':>8} {'rollouts/s':>11} {'wall s':>8}")
    for backend, r in results.items():
        if "error" in r:
            print(f"{backend:<14} failed: {r['error']}")
            continue
        print(f"{backend:<14} {r['step_s']:>8.2f} {r['rollouts_per_s']:>11.2f} {r['wall_s']:>8.0f}")
    if all("error" not in r for r in results.values()) and {"hf", "vllm"} <= set(results):
        print(f"\nstep time vllm / transformers: {results['vllm']['step_s'] / results['hf']['step_s']:.2f}")
    for backend, r in results.items():
        if "error" not in r:
            flops = params * (2 * r["generated_tokens"] + 6 * r["trained_tokens"]) / r["step_s"]
            print(
                roofline_line(
                    f"GRPO step ({backend})",
                    flops,
                    f"(2 x {r['generated_tokens']:.0f} generated + 6 x {r['trained_tokens']:.0f} trained "
                    f"tokens) x {params / 1e6:.0f}M params / {r['step_s']:.2f} s",
                    peak,
                    "float32",
                    threads,
                )
            )


if __name__ == "__main__":
    main()
