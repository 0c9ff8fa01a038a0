"""Shards: work cut into contiguous slices, each written atomically to its own file and never redone.

A shard folder is named by the hash of what the work depends on, so a change of settings or
inputs starts new shards instead of mixing old and new rows.
"""

from __future__ import annotations

from pathlib import Path

from scpo.core.io import read_rows


def shard_bounds(n: int, num_shards: int, index: int) -> tuple[int, int]:
    """Contiguous, deterministic slices: shard i is items[n*i//N : n*(i+1)//N]."""
    return n * index // num_shards, n * (index + 1) // num_shards


class ShardSet:
    """`count` shard files under `folder` (named 00000-of-00008.jsonl, ...)."""

    def __init__(self, folder: str | Path, count: int):
        self.folder, self.count = Path(folder), count

    def file(self, i: int) -> Path:
        return self.folder / f"{i:05d}-of-{self.count:05d}.jsonl"

    def pending(self, indices: list[int], overwrite: bool = False) -> list[int]:
        return [i for i in indices if overwrite or not self.file(i).exists()]

    def missing(self) -> list[int]:
        return [i for i in range(self.count) if not self.file(i).exists()]

    def read_all(self) -> list[dict]:
        """Every shard's rows, in shard order."""
        rows: list[dict] = []
        for i in range(self.count):
            rows.extend(read_rows(self.file(i), allow_empty=True))
        return rows
