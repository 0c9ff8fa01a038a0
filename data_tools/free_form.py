"""A free-form data set with reference answers, from GSM8K: `python -m data_tools.free_form --output_dir DIR`.

Each row asks for a written solution of a GSM8K problem (the task `free_form` appends the instruction); its
reference answer is GSM8K's own rationale, cleaned of the calculator annotations `<<48/2=24>>` and with the
`#### N` line written as "The answer is N.". Nothing extracts or grades an answer: the references are there to
measure held-out similarity (benchmarks/reference_similarity.py), never to train. Train rows come from GSM8K's
train split and carry the reference as `reference` (no `gold`: the labelers see none); eval rows come from the
test split and carry it as `gold`, the column `scpo eval` requires. The two splits share no problem.

GSM8K (openai/grade-school-math, MIT) is read from --gsm8k_dir (default ../shared/data/gsm8k, beside the repo).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.core.io import read_rows, write_rows

ANNOTATION = re.compile(r"<<[^<>]*>>")
FINAL = re.compile(r"\n?####\s*(.+?)\s*$", re.DOTALL)


def reference_of(rationale: str) -> str:
    """GSM8K's rationale as a plain written solution: no calculator annotations, the final line as a sentence."""
    text = ANNOTATION.sub("", rationale).strip()
    final = FINAL.search(text)
    if not final:
        raise ScpoError(f"a GSM8K rationale without its '#### N' line: {rationale[-80:]!r}")
    return f"{text[: final.start()].rstrip()}\nThe answer is {final.group(1).strip()}."


def rows_of(path: Path, split: str, count: int, column: str) -> list[dict]:
    source = read_rows(str(path), required={"question": str, "answer": str})
    if count > len(source):
        raise ScpoError(f"{path} has {len(source)} problems; asked for {count}")
    return [
        {"id": f"gsm8k-{split}-{i}", "prompt": row["question"].strip(), column: reference_of(row["answer"])}
        for i, row in enumerate(source[:count])
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--gsm8k_dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/gsm8k"))
    parser.add_argument("--train", type=int, default=64, help="problems from the train split (the first N)")
    parser.add_argument("--eval", type=int, default=48, help="problems from the test split (the first N)")
    args = parser.parse_args(argv)
    source, out = Path(args.gsm8k_dir), Path(args.output_dir)
    for name in ("train.jsonl", "test.jsonl"):
        if not (source / name).exists():
            raise ScpoError(f"--gsm8k_dir {source}: no {name} (GSM8K's jsonl files, question / answer)")
    counts = {
        "train": write_rows(
            str(out / "train.jsonl"), rows_of(source / "train.jsonl", "train", args.train, "reference")
        ),
        "eval": write_rows(str(out / "eval.jsonl"), rows_of(source / "test.jsonl", "test", args.eval, "gold")),
    }
    print(f"[free_form] {out}: {counts}")
    return counts


if __name__ == "__main__":
    main()
