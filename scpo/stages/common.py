"""What every stage shares: where its files live, and skip-if-done around a stage body."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from scpo.manifest import is_done, write_manifest


def iter_file(iter_dir: str | None, explicit: str | None, name: str) -> str:
    """An explicit path wins; otherwise `<iter_dir>/<name>`."""
    if explicit:
        return explicit
    return str(Path(iter_dir or ".") / name)


def run_once(stage: str, output: str, config: dict, inputs: list[str], body: Callable[[], dict],
             overwrite: bool = False) -> dict:
    """Runs `body` (which writes `output` atomically and returns counts) unless a matching manifest says it is done."""
    if not overwrite:
        done = is_done(output, config, inputs)
        if done is not None:
            print(f"[{stage}] {output} is up to date ({done['counts']}); skipping")
            return done
    started = time.time()
    counts = body()
    return write_manifest(output, stage, config, inputs, counts, started)
