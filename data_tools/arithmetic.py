"""Synthetic arithmetic problems for the CPU demo: `python -m data_tools.arithmetic --output_dir DIR`.

Every (a, op, b) appears once; a seeded shuffle splits them into disjoint train (gold kept for
reporting only: the loop never trains on it in unsupervised mode) and held-out eval sets.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from scpo.io import write_rows

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def problems(a_range: tuple[int, int], b_range: tuple[int, int], ops: str) -> list[dict]:
    rows = []
    for op in ops:
        for a in range(a_range[0], a_range[1] + 1):
            for b in range(b_range[0], b_range[1] + 1):
                rows.append({"id": f"{a}{op}{b}", "prompt": f"What is {a} {op} {b}?", "gold": str(OPS[op](a, b))})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--a", default="10,99", help="range of the first operand, lo,hi")
    parser.add_argument("--b", default="1,9", help="range of the second operand, lo,hi")
    parser.add_argument("--ops", default="+")
    parser.add_argument("--train", type=int, default=256)
    parser.add_argument("--eval", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    a_range = tuple(int(x) for x in args.a.split(","))
    b_range = tuple(int(x) for x in args.b.split(","))
    rows = problems(a_range, b_range, args.ops)
    if args.train + args.eval > len(rows):
        raise SystemExit(f"only {len(rows)} distinct problems; ask for fewer than {args.train} + {args.eval}")
    random.Random(args.seed).shuffle(rows)
    out = Path(args.output_dir)
    counts = {"train": write_rows(out / "train.jsonl", rows[: args.train]),
              "eval": write_rows(out / "eval.jsonl", rows[args.train: args.train + args.eval])}
    print(f"[data] {out}: {counts}")
    return counts


if __name__ == "__main__":
    main()
