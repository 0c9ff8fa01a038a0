"""`scpo data` / `python -m data_tools.convert`: any question/answer data -> scpo problems files.

Problems rows: id, prompt, gold (optional), task, plus source fields kept as they are. Duplicates
(same prompt up to whitespace and case) are dropped, keeping the first. A split is deterministic:
each problem goes to dev when a hash of (seed, id) falls under dev_fraction (or, with dev_size,
the dev_size lowest hashes), so it does not depend on row order or on other rows.

Built-in sources name the layout of the public sets (as in ../shared/data): gsm8k, math500,
svamp, mawps, aime24, amc23. Any other local data file or Hugging Face dataset folder works with
--question_field and --answer_field (loaded with `datasets`).
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.core.io import check_writable, write_json, write_rows
from scpo.core.settings import parse_settings
from scpo.tasks._numbers import canonical_number


def _gsm8k(row: dict) -> tuple[str, str | None]:
    rationale = row.get("answer")
    return row["question"], None if rationale is None else rationale.split("####")[-1].strip().replace(",", "")


def _svamp(row: dict) -> tuple[str, str | None]:
    body, question = row["Body"].strip(), row["Question"].strip()
    sep = " " if body.endswith((".", "?", "!")) else ". "
    return f"{body}{sep}{question}", _number(row.get("Answer"))


def _number(value) -> str | None:
    """A gold number in canonical form; None (no gold) when the row has none."""
    if value is None:
        return None
    return canonical_number(str(value)) or str(value)


# source name -> (question, gold) from a row, the task that grades it, and the id field if any
SOURCES: dict[str, tuple[Callable[[dict], tuple[str, str]], str, str | None]] = {
    "gsm8k": (_gsm8k, "gsm8k", None),
    "math500": (lambda r: (r["problem"], r.get("answer")), "math", "unique_id"),
    "svamp": (_svamp, "numeric", "ID"),
    "mawps": (lambda r: (r["input"], _number(r.get("target"))), "numeric", None),
    "aime24": (lambda r: (r["problem"], _number(r.get("answer"))), "numeric", "id"),
    "amc23": (lambda r: (r.get("problem") or r["question"], _number(r.get("answer"))), "numeric", "id"),
}


# Where a source's worked solution is (a gold rationale: IRPO's chosen response when no sample is correct).
SOLUTIONS = {"gsm8k": "answer", "math500": "solution", "aime24": "solution"}
CALCULATOR = re.compile(r"<<[^<>]{0,200}>>")  # GSM8K's calculator annotations, "<<48/2=24>>"


def _solution(source: str | None, row: dict, field: str | None) -> str | None:
    field = field or SOLUTIONS.get(source or "")
    text = row.get(field) if field else None
    if not isinstance(text, str) or not text.strip():
        return None
    return CALCULATOR.sub("", text).strip() if source == "gsm8k" else text.strip()


@dataclass
class DataSettings:
    """scpo data: convert a data file or Hugging Face dataset folder into a problems file (and a dev split)."""

    input: str = ""  # a data file (jsonl/json/parquet/csv) or a saved Hugging Face dataset folder
    output_dir: str = "data/problems"  # train.jsonl (and dev.jsonl) go here
    source: str | None = None  # a built-in layout (see SOURCES); else the fields below
    question_field: str = "question"  # the field with the problem text
    answer_field: str | None = "answer"  # the gold field (none: unlabeled problems)
    id_field: str | None = None  # the id field (default: a hash of the question)
    solution_field: str | None = None  # a worked solution, kept as `solution` (built-in sources: their rationale)
    task: str | None = None  # the task written into each row (default: the source's)
    split: str = "train"  # the split to read from a dataset folder
    dev_fraction: float = 0.0  # share of problems in the dev split (by a hash of the id)
    dev_size: int | None = None  # or exactly this many dev problems
    split_preset: str | None = None  # scpo_gsm8k: dev_size 800 (ScPO §3, 6.7K/0.8K); scpo_math: dev_fraction 0.1
    seed: int = 0  # seeds the split hash
    max_rows: int | None = None  # only the first N rows
    iteration: int = 0


SETTINGS = DataSettings
# ScPO §3 "Datasets": GSM8K's 7.5K train problems split 6.7K / 0.8K (train / dev); MATH: 10% of train as dev.
SPLIT_PRESETS = {"scpo_gsm8k": {"dev_size": 800}, "scpo_math": {"dev_fraction": 0.1}}


def load_records(path: str, split: str = "train") -> list[dict]:
    """Reads rows with `datasets` (a file by suffix, or a dataset folder saved to disk)."""
    import datasets

    p = Path(path)
    if not p.exists():
        raise ScpoError(f"{p}: input not found")
    datasets.disable_progress_bars()
    if p.is_dir():
        try:
            ds = datasets.load_from_disk(str(p))
        except FileNotFoundError:  # an empty folder, or one of files rather than a saved dataset
            raise ScpoError(
                f"{p}: a folder that is not a dataset saved with `save_to_disk`; give a .jsonl, .json, "
                ".parquet or .csv file, or such a folder"
            ) from None
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ScpoError(f"{p}: no split {split!r} (has {list(ds)})")
            ds = ds[split]
        return ds.to_list()
    kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(p.suffix.lower())
    if kind is None:
        raise ScpoError(f"{p}: unknown file type {p.suffix!r}")
    try:
        return datasets.load_dataset(kind, data_files=str(p), split="train").to_list()
    except Exception as e:  # datasets wraps parse errors in several types; name the file
        raise ScpoError(f"{p}: cannot be read as {kind} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _hash(seed: int, key: str) -> float:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12


def to_problems(records: list[dict], settings: DataSettings, name: str) -> tuple[list[dict], dict[str, list[int]]]:
    """Returns (problems, {"duplicates": row numbers dropped as duplicates, "empty_prompts": row numbers dropped
    for an empty or whitespace-only question}). A missing question is an error (a wrong field, most likely); an
    empty one is a hole in the data, dropped and counted, as a duplicate is."""
    if settings.source:
        if settings.source not in SOURCES:
            raise ScpoError(f"unknown source {settings.source!r}; built in: {', '.join(SOURCES)}")
        extract, default_task, id_field = SOURCES[settings.source]
    else:
        q = settings.question_field
        a = None if (settings.answer_field or "").lower() in ("", "none") else settings.answer_field

        def extract(row):
            return row[q], (None if a is None or row.get(a) is None else str(row[a]))

        default_task, id_field = settings.task or "gsm8k", settings.id_field
        if a is not None and records and not any(a in row for row in records):
            raise ScpoError(
                f"{settings.input}: no row has the answer field {a!r} (fields: {sorted(records[0])}); "
                "pass --answer_field none for unlabeled problems"
            )
    task = settings.task or default_task
    seen, problems, dropped = set(), [], {"duplicates": [], "empty_prompts": []}
    for i, row in enumerate(records, 1):
        try:
            question, gold = extract(row)
        except KeyError as e:
            raise ScpoError(f"{settings.input}: row {i} has no field {e} (fields: {sorted(row)})") from None
        if not isinstance(question, str):
            raise ScpoError(
                f"{settings.input}: row {i}: the question must be a string, not "
                f"{'null' if question is None else type(question).__name__}"
            )
        if not question.strip():
            dropped["empty_prompts"].append(i)
            continue
        key = _norm(question)
        if key in seen:
            dropped["duplicates"].append(i)
            continue
        seen.add(key)
        # Without an id field, the id is a hash of the question: stable under reordering, so splits are too.
        pid = str(row[id_field]) if id_field and row.get(id_field) is not None else f"{name}-{_digest(key)}"
        problem = {"id": pid, "prompt": question.strip(), "task": task}
        if gold is not None and str(gold).strip():  # a blank gold is no gold: the row is an unlabeled problem
            problem["gold"] = str(gold)
        solution = _solution(settings.source, row, settings.solution_field)
        if solution is not None:
            problem["solution"] = solution
        problems.append(problem)
    return problems, dropped


def check_split(settings: DataSettings, n: int) -> None:
    """The split asked for keeps a train split: named errors for impossible sizes."""
    if settings.split_preset is not None:
        if settings.split_preset not in SPLIT_PRESETS:
            raise ScpoError(f"setting split_preset={settings.split_preset!r}: expected one of {sorted(SPLIT_PRESETS)}")
        for key, value in SPLIT_PRESETS[settings.split_preset].items():
            setattr(settings, key, value)
    if settings.dev_size is not None and settings.dev_fraction:
        raise ScpoError(f"settings dev_size={settings.dev_size} and dev_fraction={settings.dev_fraction}: give one")
    if not 0 <= settings.dev_fraction < 1:
        raise ScpoError(
            f"setting dev_fraction={settings.dev_fraction}: must be in [0, 1) (a share of the problems "
            "kept for dev; the rest is train)"
        )
    if settings.dev_size is not None and not 0 <= settings.dev_size < n:
        raise ScpoError(
            f"setting dev_size={settings.dev_size}: must be in [0, {n}) for {n} problems (the rest is train)"
        )


def split(problems: list[dict], settings: DataSettings) -> tuple[list[dict], list[dict]]:
    check_split(settings, len(problems))
    if settings.dev_size:
        ranked = sorted(problems, key=lambda p: _hash(settings.seed, p["id"]))
        dev_ids = {p["id"] for p in ranked[: settings.dev_size]}
    else:
        dev_ids = {p["id"] for p in problems if _hash(settings.seed, p["id"]) < settings.dev_fraction}
    return [p for p in problems if p["id"] not in dev_ids], [p for p in problems if p["id"] in dev_ids]


def convert(settings: DataSettings) -> dict:
    if not settings.input:
        raise ScpoError("scpo data needs --input (a data file or dataset folder)")
    name = settings.source or Path(settings.input).stem
    records = load_records(settings.input, settings.split)  # a bad input is named before any folder is made
    out = Path(settings.output_dir)
    if out.exists() and not out.is_dir():
        raise ScpoError(f"setting output_dir={out}: is a file; give a folder")
    check_writable(out / "train.jsonl", "setting output_dir")  # a read-only place is named before any work
    problems, dropped = to_problems(records, settings, name)
    if not problems:
        raise ScpoError(
            f"{settings.input}: no problem in its {len(records)} rows ({len(dropped['empty_prompts'])} with an empty "
            "or whitespace-only question); check --question_field"
        )
    if settings.max_rows:
        problems = sorted(problems, key=lambda p: _hash(settings.seed + 1, p["id"]))[: settings.max_rows]
    train, dev = split(problems, settings)
    counts = {
        "input_rows": len(records),
        "duplicates_dropped": len(dropped["duplicates"]),
        "empty_prompts_dropped": len(dropped["empty_prompts"]),
        "without_gold": sum("gold" not in p for p in problems),
        "train": write_rows(out / "train.jsonl", train),
    }
    if dev:
        counts["dev"] = write_rows(out / "dev.jsonl", dev)
    write_json(out / "data.manifest.json", {"input": settings.input, "settings": vars(settings), "counts": counts})
    print(f"[data] {out}: {counts}")
    for warning in data_warnings(settings, dropped, counts):
        print(f"[data] warning: {warning}", file=sys.stderr)
    return counts


def data_warnings(settings: DataSettings, dropped: dict[str, list[int]], counts: dict) -> list[str]:
    """What a user should look at: rows dropped for an empty question (their row numbers), problems written
    without gold when an answer field was asked for (they can only be trained on unsupervised)."""

    def rows(numbers: list[int]) -> str:
        return ", ".join(map(str, numbers[:5])) + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")

    out = []
    if dropped["empty_prompts"]:
        out.append(
            f"{settings.input}: {len(dropped['empty_prompts'])} rows with an empty or whitespace-only question "
            f"dropped (rows {rows(dropped['empty_prompts'])})"
        )
    unlabeled_asked = not settings.source and (settings.answer_field or "").lower() in ("", "none")
    if counts["without_gold"] and not unlabeled_asked:
        written = counts["train"] + counts.get("dev", 0)
        out.append(
            f"{settings.input}: {counts['without_gold']} of {written} problems have no gold (a missing, null or "
            "blank answer): unlabeled problems, fine to train on by votes, but an eval, dev or guard file needs gold "
            "on every row"
        )
    return out


def main(argv: list[str]) -> dict:
    if argv and argv[0] == "convert":
        argv = argv[1:]
    return convert(parse_settings(DataSettings, argv))


if __name__ == "__main__":
    import sys

    from scpo.cli import main as cli_main

    sys.exit(cli_main(["data", *sys.argv[1:]]))
