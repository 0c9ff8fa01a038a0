"""Adversarial model text against every pattern scpo applies to it: CPU milliseconds per KB, 1 KB to 1 MB.

    python benchmarks/bench_patterns.py [--sizes 1000,10000,100000,1000000] [--timeout 20]

Degenerate RL outputs (long runs of spaces or newlines, digit runs, repeated "The answer is", nested
\\boxed{, a zebra solution nested thousands of levels deep, an unterminated grid of repeated cells that a JSON
repairer is quadratic on) reach every task's answer extraction, the judge's score and winner parsers and the
new-problem parser. A row is flat when the text is read in linear time: its ms per KB at 1 MB is no more than
GROWTH times its ms per KB at 1 KB; a pattern that backtracks or a quadratic repair grows with the size and is
listed at the end. Each size runs in its own process with a wall-clock limit, so a catastrophic one shows as
"> timeout" instead of hanging the table; the times are the process's CPU time (a busy machine does not inflate
them). Runs against whichever scpo is importable: run it in an old checkout (PYTHONPATH=<old tree>) for the
"before" column. Target: flat, under a millisecond per kilobyte.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

NEST = '{"solution": '
GRID = '{"solution": {"House 1": {"Name": "'
TEXTS = {
    "spaces after 'The answer is'": lambda n: "The answer is" + " " * n + "x",
    "newlines after 'The answer is'": lambda n: "The answer is" + "\n" * n + "x",
    "tabs and colons after 'answer is'": lambda n: "answer is" + ": \t" * (n // 3) + "x",
    "spaces after 'Score'": lambda n: "Score" + " " * n + "x",
    "spaces after 'Winner'": lambda n: "Winner" + " " * n + "x",
    "repeated 'The answer is '": lambda n: "The answer is " * (n // 14),
    "digit run": lambda n: "1" * n,
    "digits and commas": lambda n: "1," * (n // 2),
    "nested \\boxed{": lambda n: "\\boxed{" * (n // 7),
    "spaces then '$'": lambda n: "The answer is $" + " " * n + "$.",
    "'**' runs after 'Score'": lambda n: "Score" + "*" * n,
    # zebra (issue 32): json recursed once per level (RecursionError at ~1000), json_repair was quadratic on this
    "solution nested n deep": lambda n: NEST + "[" * (n - len(NEST)),
    "unterminated grid of repeated cells": lambda n: GRID + 'x", "' * ((n - len(GRID)) // 5),
}
GROWTH = 3.0  # ms per KB at the largest size over that at the smallest: above it, the row is not flat


def calls() -> dict[str, tuple]:
    """label -> (kind, name, options): every registered task's extract (and zebra's other grading and its gold
    reader, which reads text too), the judge's parsers, the new-problem parser."""
    from scpo.tasks import TASKS

    out = {f"{task}.extract": ("task", task, {}) for task in TASKS.names()}
    out["zebra(grading=zeroeval).extract"] = ("task", "zebra", {"grading": "zeroeval"})
    out["zebra.extract_gold"] = ("gold", "zebra", {})
    out["judge.parse_score"] = ("judge", "parse_score", {})
    out["judge.parse_winner"] = ("judge", "parse_winner", {})
    out["problems.parse_problem"] = ("problems", "parse_problem", {})
    return out


def call(kind: str, name: str, options: dict):
    if kind in ("task", "gold"):
        from scpo.tasks import get_task

        task = get_task(name, **options)
        return task.extract if kind == "task" else task.extract_gold
    if kind == "judge":
        import scpo.judge

        return getattr(scpo.judge, name)
    import scpo.problems

    return getattr(scpo.problems, name)


def cpu_seconds(fn, text: str, at_least: float = 0.02, most: int = 10_000) -> float:
    """CPU seconds per call of fn(text), averaged over repeats until `at_least` seconds (a 1 KB call takes
    microseconds, below the clock's resolution)."""
    fn("warm up")
    calls_, start = 0, time.thread_time()
    while True:
        fn(text)
        calls_ += 1
        spent = time.thread_time() - start
        if spent >= at_least or calls_ >= most:
            return spent / calls_


def ms_per_kb(seconds: float, chars: int) -> float:
    return seconds * 1000 / (chars / 1000)


def growth(per_kb: list[float | None]) -> float | None:
    """ms per KB at the largest size over that at the smallest: 1 is linear, 1000 over 1 KB to 1 MB quadratic;
    None when a size timed out."""
    if not per_kb or any(v is None for v in per_kb):
        return None
    return per_kb[-1] / max(per_kb[0], 1e-9)


def _worker(kind: str, name: str, options: dict, text: str, out) -> None:
    out.put(cpu_seconds(call(kind, name, options), text))


def timed(spec: tuple, text: str, timeout: float) -> float | None:
    out = mp.Queue()
    proc = mp.Process(target=_worker, args=(*spec, text, out))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return None
    return out.get()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    worst: dict[str, float] = {}
    not_flat: list[str] = []
    print("CPU ms per KB of text (flat across a row = linear)\n")
    print("| call | text | " + " | ".join(f"{n / 1000:g} KB" for n in sizes) + " | growth |")
    print("|---|---|" + "---|" * len(sizes) + "---|")
    for label, spec in calls().items():
        for text_name, make in TEXTS.items():
            per_kb: list[float | None] = []
            for n in sizes:
                text = make(n)
                seconds = None if per_kb and per_kb[-1] is None else timed(spec, text, args.timeout)
                per_kb.append(None if seconds is None else ms_per_kb(seconds, len(text)))
            ratio = growth(per_kb)
            cells = [f"> {args.timeout:.0f} s" if v is None else f"{v:.3g}" for v in per_kb]
            worst[label] = max([worst.get(label, 0.0)] + [float("inf") if v is None else v for v in per_kb])
            if ratio is None or ratio > GROWTH:
                not_flat.append(f"{label} on {text_name}")
            print(
                f"| {label} | {text_name} | " + " | ".join(cells) + f" | {'-' if ratio is None else f'{ratio:.2f}'} |",
                flush=True,
            )
    print("\nworst ms per KB per call: " + ", ".join(f"{k} {v:.4f}" for k, v in worst.items()))
    print(f"not flat (growth above {GROWTH:g} or a timeout): " + ("; ".join(not_flat) or "none"))


if __name__ == "__main__":
    main()
