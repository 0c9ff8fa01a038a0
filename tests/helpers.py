"""What the tests share: where things are, jsonl files, the CLI in a fresh process, a task a random model can vote on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The reference data sets live next to the project: ../shared/data relative to the repo root (absent in a user's clone).
DATA = ROOT.parent / "shared" / "data"


def data_file(relative: str) -> Path:
    """Path of a reference data file, or skip the test with the reason it is missing."""
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"reference data {path} not found (expected ../shared/data relative to the repo root)")
    return path


def write_jsonl(path, rows) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_scpo(*args: str, check: bool = True, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """Runs the `scpo` CLI in a fresh process, as a user would (vLLM needs its own process)."""
    env = {**kwargs.pop("env", os.environ), "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "scpo.cli", *args], capture_output=True, text=True, timeout=timeout, env=env, **kwargs
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"scpo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


# A task module for loop tests: a random model writes no numbers to vote on, but its word counts have a parity.
PARITY_TASK = """
from dataclasses import dataclass
from scpo.tasks import Task

@dataclass
class WordParity(Task):
    keys_are_exact: bool = True
    truncated_completions_vote: bool = True  # a random model never stops by itself

    def extract(self, completion):
        return str(len(completion.split()) % 2)  # two answers: votes have majorities and minorities
"""
