"""Label + pairs throughput (completions/s, one core) against a naive all-pairs grouping.

    python benchmarks/bench_label.py [--completions 100000] [--k 8]

Synthetic samples file: k completions per prompt whose final answers take a few distinct values
per prompt (spelled several equivalent ways for `math`), values unique to each prompt so no cache
is shared across prompts. scpo runs the real `scpo label` + `scpo pairs` stages on the file; the
baseline groups by comparing every pair of completions with the task's equivalence (k^2 per
prompt), as a straightforward implementation would. For `math` the baseline runs on a subset
(it is slow) and rates are per completion. A sweep over k at a fixed number of distinct answers
shows that scpo's grader calls grow with distinct answers, not with k^2.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from scpo.core.io import write_rows
from scpo.labelers import LABELERS
from scpo.labelers.votes import label_rows
from scpo.stages import label, pairs
from scpo.tasks import get_task

SPELLINGS = [
    lambda n, d: f"\\frac{{{n}}}{{{d}}}",
    lambda n, d: f"\\dfrac{{{n}}}{{{d}}}",
    lambda n, d: f"{n}/{d}",
    lambda n, d: f"\\frac{{{2 * n}}}{{{2 * d}}}",
]


def synthetic(task: str, prompts: int, k: int, distinct: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for p in range(prompts):
        weights = [2 ** (distinct - i) for i in range(distinct)]  # a clear majority, a tail of minorities
        for _ in range(k):
            v = rng.choices(range(distinct), weights)[0]
            if task == "gsm8k":
                answer = 1000 * p + v
                text = (
                    f"We add {v} and {p} step by step.\nSo the total is {answer:,} dollars.\nThe answer is {answer:,}."
                )
            else:
                n, d = 7 * p + v + 1, 3 + (p % 5) * 2  # a value unique to this prompt
                text = f"Simplify the fraction step by step. The result is $\\boxed{{{rng.choice(SPELLINGS)(n, d)}}}$."
            if rng.random() < 0.03:
                text = "I am not sure."
            rows.append({"id": f"p{p}", "prompt": f"problem {p}", "completion": text})
    return rows


def run_scpo(task: str, rows: list[dict], workdir: Path) -> float:
    samples = workdir / f"{task}.samples.jsonl"
    write_rows(samples, rows)
    start = time.perf_counter()
    common = ["--task", task, "--iter_dir", str(workdir), "--samples_file", str(samples), "--overwrite"]
    label.main(common + ["--labels_file", str(workdir / f"{task}.labels.jsonl")])
    pairs.main(
        [
            "--task",
            task,
            "--labels_file",
            str(workdir / f"{task}.labels.jsonl"),
            "--pairs_file",
            str(workdir / f"{task}.pairs.jsonl"),
            "--overwrite",
        ]
    )
    return time.perf_counter() - start


def naive_equivalent(task_name: str):
    """What a straightforward implementation compares: canonical numbers, or math-verify on every pair."""
    if task_name == "gsm8k":
        from scpo.tasks._numbers import canonical_number

        return lambda a, b: canonical_number(a) == canonical_number(b)
    from math_verify import parse, verify

    return lambda a, b: verify(parse(f"${a}$"), parse(f"${b}$"))


def run_naive(task_name: str, rows: list[dict]) -> float:
    """Votes by comparing each completion's answer with every other one's (k^2 per prompt, no cache)."""
    task, equivalent = get_task(task_name), naive_equivalent(task_name)
    start = time.perf_counter()
    by_id: dict[str, list[str | None]] = {}
    for row in rows:
        by_id.setdefault(row["id"], []).append(task.extract(row["completion"]))
    for answers in by_id.values():
        votes = [sum(1 for b in answers if a is not None and b is not None and equivalent(a, b)) for a in answers]
        _best, _worst = max(range(len(votes)), key=votes.__getitem__), min(range(len(votes)), key=votes.__getitem__)
    return time.perf_counter() - start


def run_core(task_name: str, rows: list[dict]) -> float:
    """scpo's grouping and pair selection in memory: the part the naive baseline replaces."""
    task = get_task(task_name)
    votes = LABELERS.get("votes")(pairs.settings_class([])(), task)
    start = time.perf_counter()
    labeled, _ = label_rows(rows, task, progress=False)
    pairs.build_pairs(labeled, votes)
    return time.perf_counter() - start


def count_grader_calls(k: int, distinct: int, prompts: int = 20) -> tuple[int, float, int]:
    """(scpo's math-verify calls, distinct answer keys per prompt, the naive k^2 comparisons)."""
    task = get_task("math")
    calls = 0
    original = task._verify

    def counted(a, b):
        nonlocal calls
        calls += 1
        return original(a, b)

    task._verify = counted
    rows = synthetic("math", prompts, k, distinct)
    labeled, _ = label_rows(rows, task, progress=False)
    keys = {(r["id"], task.answer_key(r["answer"])) for r in labeled if r["answer"] is not None}
    return calls, len(keys) / prompts, prompts * k * (k - 1) // 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--completions", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--distinct", type=int, default=3)
    parser.add_argument("--math_baseline_prompts", type=int, default=100)
    args = parser.parse_args()
    prompts = args.completions // args.k
    print(f"{args.completions} completions, k={args.k}, ~{args.distinct} distinct answers per prompt, one process\n")
    print(f"{'task':<7} {'scpo stages (files)':>20} {'scpo in memory':>15} {'naive all-pairs':>16} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for task in ("gsm8k", "math"):
            rows = synthetic(task, prompts, args.k, args.distinct)
            r_stage = len(rows) / run_scpo(task, rows, Path(tmp))
            r_core = len(rows) / run_core(task, rows)
            base_rows = rows if task == "gsm8k" else rows[: args.math_baseline_prompts * args.k]
            r_naive = len(base_rows) / run_naive(task, base_rows)
            print(
                f"{task:<7} {r_stage:>16,.0f} c/s {r_core:>11,.0f} c/s {r_naive:>12,.0f} c/s {r_core / r_naive:>6.1f}x"
            )
    print("\nmath grader calls (math-verify) per 20 prompts, 4 distinct answers, as k grows:")
    print(f"{'k':>4} {'distinct keys/prompt':>21} {'scpo calls':>11} {'naive k^2':>10}")
    for k in (8, 16, 32, 64):
        calls, keys, naive = count_grader_calls(k, 4)
        print(f"{k:>4} {keys:>21.1f} {calls:>11} {naive:>10}")


if __name__ == "__main__":
    main()
