"""The roofline line every benchmark prints: the machine's measured matmul peak against a stage's achieved FLOP/s.

    python benchmarks/roofline.py [--dtype bfloat16] [--threads 1]     # the peak alone

Peak: a square torch matmul (n = 1024, 2 n^3 FLOPs each) in the dtype and with the threads the stage uses,
repeated for about a second, best of three. Achieved: tokens/s x 2 x parameters for a forward (sampling) and
x 6 for a forward and backward (training), the usual dense-transformer count (attention's own FLOPs left out,
small at these lengths). The ratio says how far a stage is from what this machine can do; a low one points at
overhead (Python, scheduling, memory traffic), not at arithmetic.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


def matmul_peak(dtype: str = "float32", threads: int | None = None, n: int = 1024, seconds: float = 1.0) -> float:
    """FLOP/s of an n x n matmul in `dtype` with `threads` torch threads (restored afterwards)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a, b = (torch.randn(n, n).to(DTYPES[dtype]) for _ in range(2))
        torch.matmul(a, b)  # warm-up
        best = 0.0
        for _ in range(3):
            count, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds / 3:
                torch.matmul(a, b)
                count += 1
            best = max(best, 2 * n**3 * count / elapsed)
        return best
    finally:
        torch.set_num_threads(before)


def parameters(model_path: str) -> int:
    """The model's parameter count, tied embeddings once (from its weights, without building the model)."""
    from safetensors import safe_open

    total, seen = 0, set()
    for path in sorted(Path(model_path).glob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            for name in f.keys():
                if name not in seen:
                    seen.add(name)
                    shape = f.get_slice(name).get_shape()
                    size = 1
                    for d in shape:
                        size *= d
                    total += size
    if not total:
        raise SystemExit(f"no *.safetensors in {model_path}")
    return total


def line(what: str, achieved: float, formula: str, peak: float, dtype: str, threads: int) -> str:
    """One line: a stage's achieved FLOP/s (`formula` says how it was counted) against the matmul peak."""
    return (
        f"roofline {what}: {formula} = {achieved / 1e9:.2f} GFLOP/s vs matmul peak {peak / 1e9:.1f} GFLOP/s "
        f"({dtype}, {threads} threads): {achieved / peak:.3f} of peak"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    peak = matmul_peak(args.dtype, args.threads)
    print(json.dumps({"dtype": args.dtype, "threads": args.threads, "peak_gflops": round(peak / 1e9, 1)}))


if __name__ == "__main__":
    main()
