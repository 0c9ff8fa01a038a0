"""Synthetic arithmetic problems for the CPU demo: `python -m data_tools.arithmetic --output_dir DIR`.

Each fact (a, op, b) is asked in `--phrasings` ways. A seeded shuffle splits the *facts* into
disjoint train, dev (`--dev`, for checkpoint selection) and held-out eval sets, in that order, so no
dev or eval computation is seen in training, in any wording; the train split does not depend on `--dev`.
Train rows keep their gold for reporting only: in unsupervised mode the loop never trains on it.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from scpo.core.io import write_rows

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
WORDS = {
    "+": ("sum", "Add {a} and {b}."),
    "-": ("difference", "Subtract {b} from {a}."),
    "*": ("product", "Multiply {a} by {b}."),
}
PHRASINGS = [
    lambda a, op, b: f"What is {a} {op} {b}?",
    lambda a, op, b: f"Compute {a} {op} {b}.",
    lambda a, op, b: f"What is the {WORDS[op][0]} of {a} and {b}?",
    lambda a, op, b: WORDS[op][1].format(a=a, b=b),
]


def facts(a_range: tuple[int, int], b_range: tuple[int, int], ops: str) -> list[tuple[int, str, int]]:
    return [
        (a, op, b) for op in ops for a in range(a_range[0], a_range[1] + 1) for b in range(b_range[0], b_range[1] + 1)
    ]


def problems(fact_list: list[tuple[int, str, int]], phrasings: int) -> list[dict]:
    return [
        {
            "id": f"{a}{op}{b}" + (f"#{i}" if phrasings > 1 else ""),
            "prompt": PHRASINGS[i](a, op, b),
            "gold": str(OPS[op](a, b)),
        }
        for a, op, b in fact_list
        for i in range(phrasings)
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--a", default="10,99", help="range of the first operand, lo,hi")
    parser.add_argument("--b", default="1,9", help="range of the second operand, lo,hi")
    parser.add_argument("--ops", default="+")
    parser.add_argument("--train", type=int, default=256, help="number of train facts")
    parser.add_argument("--dev", type=int, default=0, help="number of dev facts (written to dev.jsonl)")
    parser.add_argument("--eval", type=int, default=300, help="number of eval facts")
    parser.add_argument("--phrasings", type=int, default=1, choices=range(1, len(PHRASINGS) + 1))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    a_range = tuple(int(x) for x in args.a.split(","))
    b_range = tuple(int(x) for x in args.b.split(","))
    fact_list = facts(a_range, b_range, args.ops)
    if args.train + args.dev + args.eval > len(fact_list):
        raise SystemExit(
            f"only {len(fact_list)} distinct problems; ask for fewer than {args.train} + {args.dev} + {args.eval}"
        )
    random.Random(args.seed).shuffle(fact_list)
    out = Path(args.output_dir)
    train, dev = fact_list[: args.train], fact_list[args.train : args.train + args.dev]
    held_out = fact_list[args.train + args.dev : args.train + args.dev + args.eval]
    counts = {
        "train": write_rows(out / "train.jsonl", problems(train, args.phrasings)),
        "eval": write_rows(out / "eval.jsonl", problems(held_out, args.phrasings)),
    }
    if dev:
        counts["dev"] = write_rows(out / "dev.jsonl", problems(dev, args.phrasings))
    print(f"[data] {out}: {counts}")
    return counts


if __name__ == "__main__":
    main()
