"""Adversarial model text against every pattern scpo applies to it: seconds per call for 1k / 10k / 100k characters.

    python benchmarks/bench_patterns.py [--sizes 1000,10000,100000] [--timeout 20]

Degenerate RL outputs (long runs of spaces or newlines, digit runs, repeated "The answer is", nested
\\boxed{) reach answer extraction, the judge's score and winner parsers and the new-problem parser.
A pattern that backtracks is polynomial in the run's length; each call runs in its own process
with a time limit, so a catastrophic one shows as "> timeout" instead of hanging the table. Runs
against whichever scpo is importable: run it in an old checkout (PYTHONPATH=<old tree>) for the
"before" column. Target: linear, under a millisecond per kilobyte.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

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
}
CALLS = {
    "gsm8k.extract": ("task", "gsm8k"),
    "math.extract": ("task", "math"),
    "numeric.extract": ("task", "numeric"),
    "multiple_choice.extract": ("task", "multiple_choice"),
    "zebra.extract": ("task", "zebra"),
    "judge.parse_score": ("judge", "parse_score"),
    "judge.parse_winner": ("judge", "parse_winner"),
    "problems.parse_problem": ("problems", "parse_problem"),
}


def call(kind: str, name: str):
    if kind == "task":
        from scpo.tasks import get_task

        return get_task(name).extract
    if kind == "judge":
        import scpo.judge

        return getattr(scpo.judge, name)
    import scpo.problems

    return getattr(scpo.problems, name)


def _worker(kind: str, name: str, text: str, out) -> None:
    fn = call(kind, name)
    fn("warm up")
    t0 = time.perf_counter()
    fn(text)
    out.put(time.perf_counter() - t0)


def timed(kind: str, name: str, text: str, timeout: float) -> float | None:
    out = mp.Queue()
    proc = mp.Process(target=_worker, args=(kind, name, text, out))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return None
    return out.get()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    worst: dict[str, float] = {}
    print("| call | text | " + " | ".join(f"{n // 1000}k chars" for n in sizes) + " | ms per KB (largest) |")
    print("|---|---|" + "---|" * len(sizes) + "---|")
    for label, (kind, name) in CALLS.items():
        for text_name, make in TEXTS.items():
            cells, last = [], None
            for n in sizes:
                seconds = timed(kind, name, make(n), args.timeout)
                cells.append(f"> {args.timeout:.0f} s" if seconds is None else f"{seconds * 1000:.2f} ms")
                last = (seconds, n)
                if seconds is None:
                    cells += ["-"] * (len(sizes) - len(cells))
                    break
            per_kb = None if last[0] is None else last[0] * 1000 / (last[1] / 1000)
            worst[label] = max(worst.get(label, 0.0), float("inf") if per_kb is None else per_kb)
            print(
                f"| {label} | {text_name} | "
                + " | ".join(cells)
                + f" | {'-' if per_kb is None else f'{per_kb:.4f}'} |",
                flush=True,
            )
    print("\nworst ms per KB per call: " + ", ".join(f"{k} {v:.4f}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
