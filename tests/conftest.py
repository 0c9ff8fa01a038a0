"""Shared fixtures: real models, built locally (no hub): a tiny random Llama and the embedded SmolLM2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def embedded_model() -> str:
    from scpo.stages.model import prepare_embedded

    return str(prepare_embedded())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, embedded_model) -> str:
    from scpo.stages.model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("models") / "tiny"))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def run_scpo(*args: str, check: bool = True, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """Runs the `scpo` CLI in a fresh process, as a user would (vLLM needs its own process)."""
    env = {**kwargs.pop("env", os.environ), "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "scpo.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"scpo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc
