"""Zebra puzzles with unique solutions, ZebraLogic-style: `scpo puzzles --output_dir DIR [--train_sizes 2*2,2*3 ...]`.

Writes `train.jsonl`, `eval.jsonl` (and `dev.jsonl` with `--dev N`) in the problems format: id, prompt (the
puzzle text), gold (the solution grid {"House 1": {"Name": ..., ...}, ...}), size ("3*4"), houses, columns
(each header with its values; the headers make the answer template) and clues (the structured clue set, which
`--check` re-proves).
Each split has its own sizes and its own seeds (puzzle i of split s is drawn from the seed "seed:s:size:i"),
so a split does not change when another one grows; a puzzle whose text already appeared in an earlier split
is drawn again, so no eval puzzle is seen in training. Every puzzle's uniqueness is proved again after
generation by enumerating its grids with the solver (at most one may exist), and `generator_stats.json`
records per size: puzzles, share proved unique (must be 1.0), clues per puzzle, milliseconds per puzzle.

`scpo puzzles --check FILE`: proves each row of a hand-written puzzles file (houses, columns, clues) has
exactly one solution, and that it equals the row's gold when one is given.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.core.io import check_writable, read_rows, write_json, write_rows
from scpo.tasks._zebra_puzzles import Clue, Encoding, check_puzzle, generate, parse_size, positions, puzzle_text
from scpo.tasks.zebra import Zebra


def puzzle_row(puzzle, pid: str) -> dict:
    return {
        "id": pid,
        "prompt": puzzle_text(puzzle),
        "gold": puzzle.gold(),
        "size": puzzle.size,
        "houses": puzzle.houses,
        "columns": {a: list(values) for a, values in puzzle.columns.items()},
        "clues": [c.as_row() for c in puzzle.clues],
    }


def make_split(name: str, sizes: list[str], count: int, seed: int, seen: set[str], stats: dict) -> list[dict]:
    """`count` puzzles spread evenly over `sizes` (in order), none whose text is in `seen`."""
    rows = []
    for i in range(count):
        size = sizes[i % len(sizes)]
        houses, attributes = parse_size(size)
        for attempt in range(1000):
            rng = random.Random(f"{seed}:{name}:{size}:{i}:{attempt}")
            start = time.perf_counter()
            puzzle = generate(houses, attributes, rng)
            elapsed = time.perf_counter() - start
            if puzzle_text(puzzle) not in seen:
                break
        else:
            raise ScpoError(f"split {name}: no new puzzle of size {size} in 1000 draws; ask for fewer puzzles")
        seen.add(puzzle_text(puzzle))
        grids = Encoding(houses, puzzle.columns).solutions(puzzle.clues, limit=2)  # an independent re-proof
        unique = len(grids) == 1 and grids[0] == positions(puzzle.solution)
        entry = stats.setdefault(puzzle.size, {"puzzles": 0, "unique": 0, "clues": 0, "seconds": 0.0})
        entry["puzzles"] += 1
        entry["unique"] += unique
        entry["clues"] += len(puzzle.clues)
        entry["seconds"] += elapsed
        rows.append(puzzle_row(puzzle, f"zebra-{name}-{puzzle.size.replace('*', 'x')}-{i:05d}"))
    return rows


def check_file(path: str) -> int:
    """Proves every row of a hand-written puzzles file; a named error at the first row that fails."""
    task = Zebra()
    rows = read_rows(path, required={"id": (str, int), "houses": int, "columns": (dict,), "clues": list})
    for line, row in enumerate(rows, 1):
        where = f"{path}:{line}: puzzle {row['id']!r}"
        columns = {str(a): [str(v) for v in values] for a, values in row["columns"].items()}
        clues = [Clue.from_row(c, where) for c in row["clues"]]
        grid = check_puzzle(int(row["houses"]), columns, clues, where)
        if row.get("gold") is not None:
            solved = {f"House {h + 1}": {a: v for (a, v), hh in grid.items() if hh == h} for h in range(row["houses"])}
            if task.extract_gold(solved) != task.extract_gold(row["gold"]):
                raise ScpoError(f"{where}: the clues' one solution is {json.dumps(solved)}, not the row's gold")
    print(f"[puzzles] {path}: {len(rows)} puzzle(s), each with exactly one solution")
    return len(rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="scpo puzzles", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir")
    parser.add_argument("--train_sizes", default="2*2,2*3", help="houses*attributes, comma-separated (2..6 each)")
    parser.add_argument("--train", type=int, default=200, help="number of train puzzles")
    parser.add_argument("--dev_sizes", default=None, help="default: the eval sizes")
    parser.add_argument("--dev", type=int, default=0, help="number of dev puzzles (written to dev.jsonl)")
    parser.add_argument("--eval_sizes", default=None, help="default: the train sizes")
    parser.add_argument("--eval", type=int, default=100, help="number of eval puzzles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", metavar="FILE", help="prove the puzzles of FILE unique instead of generating")
    args = parser.parse_args(argv)
    if args.check:
        return {"checked": check_file(args.check)}
    if not args.output_dir:
        raise ScpoError("scpo puzzles: --output_dir is required (or --check FILE)")
    for flag in ("train", "dev", "eval"):
        if getattr(args, flag) < 0:
            raise ScpoError(f"--{flag} {getattr(args, flag)}: a number of puzzles, 0 or more")
    eval_sizes = args.eval_sizes or args.train_sizes
    splits = [
        ("train", args.train_sizes, args.train),
        ("dev", args.dev_sizes or eval_sizes, args.dev),
        ("eval", eval_sizes, args.eval),
    ]
    for name, sizes, count in splits:
        if count and not [s for s in (sizes or "").split(",") if s.strip()]:
            raise ScpoError(
                f"--{name}_sizes {sizes!r} names no size for {count} {name} puzzles (give houses*attributes, e.g. 2*3)"
            )
    out, seen, stats, counts = Path(args.output_dir), set(), {}, {}
    if out.exists() and not out.is_dir():
        raise ScpoError(f"--output_dir {out}: is a file; give a folder")
    check_writable(out / "generator_stats.json", "--output_dir")  # a read-only place is named before any puzzle
    # Eval first: its puzzles do not depend on the other splits' sizes or counts.
    for name, sizes, count in sorted(splits, key=lambda s: s[0] != "eval"):
        if count:
            size_list = [s.strip() for s in sizes.split(",") if s.strip()]
            for size in size_list:
                parse_size(size)
            counts[name] = write_rows(out / f"{name}.jsonl", make_split(name, size_list, count, args.seed, seen, stats))
    summary = {
        size: {
            "puzzles": e["puzzles"],
            "unique_share": e["unique"] / e["puzzles"],
            "clues_per_puzzle": round(e["clues"] / e["puzzles"], 2),
            "ms_per_puzzle": round(1000 * e["seconds"] / e["puzzles"], 2),
        }
        for size, e in sorted(stats.items())
    }
    write_json(out / "generator_stats.json", summary)
    for size, e in summary.items():
        print(
            f"[puzzles] {size}: {e['puzzles']} puzzles, {e['unique_share']:.0%} proved unique, "
            f"{e['clues_per_puzzle']} clues each, {e['ms_per_puzzle']} ms each"
        )
    bad = [size for size, e in summary.items() if e["unique_share"] < 1]
    if bad:
        raise ScpoError(f"puzzles of size(s) {bad} are not all unique: a generator bug; please report it")
    print(f"[puzzles] {out}: {counts}")
    return counts


if __name__ == "__main__":
    main()
