"""Zebra puzzles: generation with the SAT proof against brute-force uniqueness, and grading against ZeroEval's way.

    python benchmarks/bench_zebra.py [--puzzles 20] [--completions 20000]

1. Generation: scpo's generator proves uniqueness with pycosat; the plain baseline proves the same clue set
   unique by enumerating every grid ((houses!)^attributes of them) and evaluating the clues. Puzzles/s of each
   (the baseline only where enumeration is feasible), on the same puzzles.
2. Grading: synthetic real-looking completions (fenced JSON, prose after it, a missing closing brace, keys in
   another case, a trailing comma, no answer) graded by the zebra task, and by ZeroEval's rule (the last
   complete {...} by a brace stack, json.loads, cells compared lower-cased); completions/s and the share of
   right answers each recovers (gold known).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import time

from scpo.tasks import get_task
from scpo.tasks._zebra_puzzles import Encoding, generate, holds, positions


def brute_force_unique(puzzle) -> bool:
    columns, n = puzzle.columns, puzzle.houses
    fits = 0
    for perms in itertools.product(*(itertools.permutations(range(n)) for _ in columns)):
        grid = {(a, v): perm[i] for (a, values), perm in zip(columns.items(), perms) for i, v in enumerate(values)}
        fits += all(holds(c, grid) for c in puzzle.clues)
        if fits > 1:
            return False
    return fits == 1


def zeroeval_extract(text: str):
    """ZeroEval's rule, written from its description: the last complete top-level {...} (a brace stack), json.loads."""
    depth, start, last = 0, None, None
    for i, c in enumerate(text):
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                last = text[start : i + 1]
    try:
        obj = json.loads(last) if last else None
    except ValueError:
        return None
    return obj.get("solution") if isinstance(obj, dict) else None


def zeroeval_correct(solution, gold: dict) -> bool:
    if not isinstance(solution, dict):
        return False
    for house, row in gold.items():
        for column, value in row.items():
            cell = solution.get(house, {}).get(column) if isinstance(solution.get(house), dict) else None
            if isinstance(cell, list):
                cell = cell[0] if cell else None
            if not isinstance(cell, str) or cell.lower().strip() != value.lower().strip():
                return False
    return True


def completions(puzzles, count: int, rng: random.Random) -> list[tuple[str, dict]]:
    out = []
    for i in range(count):
        gold = puzzles[i % len(puzzles)].gold()
        body = json.dumps({"reasoning": "From clue 1 {the first} ...", "solution": gold}, indent=4)
        style = i % 6
        if style == 0:
            text = f"Here is the answer:\n```json\n{body}\n```"
        elif style == 1:
            text = body + "\n\nThis satisfies every clue."
        elif style == 2:
            text = body[: body.rstrip().rfind("}")] + "\nI hope this helps."
        elif style == 3:
            upper = {h.lower(): {c.upper(): v for c, v in row.items()} for h, row in gold.items()}
            text = json.dumps({"solution": upper})
        elif style == 4:
            text = body.replace('"\n        }', '",\n        }', 1)
        else:
            text = "I could not find the solution."
        out.append((text, gold))
    rng.shuffle(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--puzzles", type=int, default=20)
    parser.add_argument("--completions", type=int, default=20000)
    args = parser.parse_args()

    print("generation: puzzles/s, SAT proof (scpo) vs brute-force enumeration (baseline), same puzzles")
    for size in [(2, 2), (2, 4), (3, 3), (3, 4), (4, 3), (4, 4), (5, 5), (6, 6)]:
        start = time.perf_counter()
        puzzles = [generate(*size, random.Random(i)) for i in range(args.puzzles)]
        scpo_rate = args.puzzles / (time.perf_counter() - start)
        proof_start = time.perf_counter()
        assert all(Encoding(p.houses, p.columns).solutions(p.clues) == [positions(p.solution)] for p in puzzles)
        proof_rate = args.puzzles / (time.perf_counter() - proof_start)
        grids = math.factorial(size[0]) ** size[1]
        if grids <= 20000:
            start = time.perf_counter()
            assert all(brute_force_unique(p) for p in puzzles)
            base = args.puzzles / (time.perf_counter() - start)
            line = f"brute-force proof {base:9.1f}/s, SAT proof {proof_rate:9.1f}/s: {proof_rate / base:8.1f}x"
        else:
            line = f"brute force: {grids:.2e} grids per puzzle, not run; SAT proof {proof_rate:.1f}/s"
        print(f"  {size[0]}*{size[1]}: generate + prove {scpo_rate:8.1f} puzzles/s; {line}")

    rng = random.Random(0)
    puzzles = [generate(3, 4, random.Random(i)) for i in range(50)]
    texts = completions(puzzles, args.completions, rng)
    task = get_task("zebra")
    golds = {id(g): task.extract_gold(g) for _, g in texts}
    start = time.perf_counter()
    ours = sum(task.extract(t) == golds[id(g)] for t, g in texts)
    ours_rate = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    base = sum(zeroeval_correct(zeroeval_extract(t), g) for t, g in texts)
    base_rate = len(texts) / (time.perf_counter() - start)
    right = len(texts) * 5 // 6
    print(
        f"grading {len(texts)} completions (5 of 6 styles hold the right grid): scpo {ours_rate:,.0f}/s, "
        f"{ours}/{right} right answers recovered; ZeroEval's rule {base_rate:,.0f}/s, {base}/{right}; "
        f"speed ratio {ours_rate / base_rate:.2f}, recovered ratio {ours / max(base, 1):.2f}"
    )


if __name__ == "__main__":
    main()
