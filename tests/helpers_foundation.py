"""Shared helpers for the foundation tests (data location, jsonl files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# The reference data sets live next to the project: ../shared/data relative to the repo root.
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_file(relative: str) -> Path:
    """Path of a reference data file, or skip the test with the reason it is missing."""
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"reference data {path} not found (expected ../shared/data relative to the repo root)")
    return path


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path
