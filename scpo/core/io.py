"""Reading and writing the stage files (jsonl / parquet), atomically, with errors that name file and line.

No torch here: stages that only move rows (label, pairs) stay fast to start and to test.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from scpo.core.errors import ScpoError

FORMATS = (".jsonl", ".json", ".parquet")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ScpoError(f"{path}: unknown file type {suffix!r}; use one of {', '.join(FORMATS)}")
    return suffix


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yields (line number, row); blank lines are skipped. Malformed lines raise with file:line."""
    path = Path(path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ScpoError(
                    f"{path}:{lineno}: not UTF-8 text (byte {e.start + 1} of the line); re-encode the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ScpoError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise ScpoError(f"{path}:{lineno}: malformed JSON (nested too deeply to be a data row)") from None
            if not isinstance(row, dict):
                raise ScpoError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def read_numbered(
    path: str | os.PathLike, required: dict[str, type | tuple] | None = None, allow_empty: bool = False
) -> list[tuple[int, dict]]:
    """(line, row) for every row of a jsonl/json/parquet file, with required fields and their types checked.

    `required` maps a field name to the accepted type(s). Errors name the file and line (row
    number for parquet and json lists, 1-based).
    """
    path = Path(path)
    if not path.exists():
        raise ScpoError(f"{path}: file not found")
    if path.is_dir():
        raise ScpoError(f"{path}: is a folder, expected a {', '.join(FORMATS)} file")
    fmt = _format(path)
    if fmt == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a file that is not parquet
            raise ScpoError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
        numbered: Iterable[tuple[int, dict]] = enumerate(rows, 1)
    elif fmt == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "[]")
        except UnicodeDecodeError:
            raise ScpoError(f"{path}: not UTF-8 text; re-encode the file as UTF-8") from None
        except json.JSONDecodeError as e:
            raise ScpoError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
        except RecursionError:
            raise ScpoError(f"{path}: malformed JSON (nested too deeply to be a data file)") from None
        if not isinstance(data, list):
            raise ScpoError(f"{path}: expected a JSON list of objects")
        numbered = enumerate(data, 1)
    else:
        numbered = iter_jsonl(path)
    out = []
    for lineno, row in numbered:
        if required:
            check_row(row, required, f"{path}:{lineno}")
        out.append((lineno, row))
    if not out and not allow_empty:
        raise ScpoError(f"{path}: file is empty (no rows)")
    return out


def read_rows(
    path: str | os.PathLike, required: dict[str, type | tuple] | None = None, allow_empty: bool = False
) -> list[dict]:
    """Every row of a jsonl/json/parquet file, checked as `read_numbered` does."""
    return [row for _, row in read_numbered(path, required, allow_empty)]


def check_row(row: Any, required: dict[str, type | tuple], where: str) -> None:
    if not isinstance(row, dict):
        raise ScpoError(f"{where}: expected an object, got {type(row).__name__}")
    for field, typ in required.items():
        if field not in row:
            raise ScpoError(f"{where}: missing required field {field!r} (fields present: {sorted(row)})")
        if row[field] is None:
            raise ScpoError(f"{where}: required field {field!r} is null")
        if not isinstance(row[field], typ) or isinstance(row[field], bool) and bool not in _as_tuple(typ):
            names = "/".join(t.__name__ for t in _as_tuple(typ))
            raise ScpoError(f"{where}: field {field!r} must be {names}, got {type(row[field]).__name__}")


def _as_tuple(typ) -> tuple:
    return typ if isinstance(typ, tuple) else (typ,)


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """A named error now, before any work, for an output that could not be written at the end: the folder is
    created and a probe file written and removed there."""
    path = Path(path)
    if path.is_dir():
        raise ScpoError(f"{what} {path}: is a folder; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ScpoError(f"{what} {path}: cannot write there ({e.strerror or e}); choose another folder") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def stale_temp_files(path: Path) -> list[Path]:
    """Temp files a killed writer of `path` left behind (`.<name>.<random>.tmp`, mkstemp's names):
    not those of `<name>.manifest.json` or `<name>.counts.json`, which share the prefix."""
    if not path.parent.is_dir():
        return []
    own = re.compile(re.escape(f".{path.name}.") + r"[A-Za-z0-9_]+\.tmp")
    return sorted(p for p in path.parent.iterdir() if own.fullmatch(p.name))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temp path next to `path`; renames it onto `path` only if the block succeeds.

    Temp files of earlier, killed writes of the same path are removed first; the file gets the
    permissions the umask gives new files (mkstemp's 0600 would hide outputs from a team).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temp_files(path):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_rows(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Writes rows atomically as jsonl or parquet (by suffix). Returns the row count."""
    path = Path(path)
    fmt = _format(path)
    rows = list(rows)
    with atomic_path(path) as tmp:
        if fmt == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            # from_pylist takes its columns from the first row; a field only later rows have would vanish.
            columns = list(dict.fromkeys(key for row in rows for key in row))
            pq.write_table(pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows]), tmp)
        elif fmt == ".json":
            tmp.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False))
                    f.write("\n")
    return len(rows)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def config_digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
