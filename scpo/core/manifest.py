"""Stage manifests: a stage whose output exists and whose manifest matches its config and inputs is skipped.

The manifest is written after the output (both atomically), so a killed stage leaves either
nothing or a complete output without a manifest, and the re-run redoes it. `run_once` wraps a
stage body in that check; `iter_file` says where a stage's file lives in an iteration folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.core.io import config_digest, file_digest, write_json


def output_digest(output: str | Path) -> str:
    """A file's content hash; for a folder (a saved model), the names and sizes of its files."""
    output = Path(output)
    if output.is_dir():
        return config_digest({p.name: p.stat().st_size for p in sorted(output.iterdir()) if p.is_file()})
    return file_digest(output)


def manifest_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".manifest.json")


def fingerprint(config: dict, inputs: list[str | Path]) -> dict:
    return {
        "config_hash": config_digest(config),
        "inputs": {str(p): file_digest(p) for p in inputs},
    }


def is_done(
    output: str | Path, config: dict, inputs: list[str | Path], normalize: Callable[[dict], dict] | None = None
) -> dict | None:
    """The saved manifest if `output` is complete for this config and these inputs, else None. `normalize` maps a
    saved config to what this version hashes, so a manifest written before a key left the hash still matches."""
    path = manifest_path(output)
    if not Path(output).exists() or not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    want = fingerprint(config, inputs)
    saved_hash = saved.get("config_hash")
    if normalize is not None and isinstance(saved.get("config"), dict):
        saved_hash = config_digest(normalize(saved["config"]))
    if saved_hash != want["config_hash"] or saved.get("inputs") != want["inputs"]:
        return None
    if saved.get("output_digest") != output_digest(output):
        return None
    return saved


def peak_rss_mb() -> int:
    """The stage's peak resident memory in MB: the larger of this process's and of its largest finished child's
    (a training child under accelerate). In a `scpo chain` it is the chain process's peak so far."""
    import resource

    return round(
        max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    )


def write_manifest(
    output: str | Path, stage: str, config: dict, inputs: list[str | Path], counts: dict, started: float
) -> dict:
    manifest = {
        "stage": stage,
        **fingerprint(config, inputs),
        "config": config,
        "output": str(output),
        "output_digest": output_digest(output),
        "counts": counts,
        "seconds": round(time.time() - started, 3),
        "peak_rss_mb": peak_rss_mb(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(manifest_path(output), manifest)
    return manifest


def iter_file(iter_dir: str | None, explicit: str | None, name: str) -> str:
    """An explicit path wins; otherwise `<iter_dir>/<name>`."""
    if explicit:
        return explicit
    return str(Path(iter_dir or ".") / name)


def check_own_output(output: str | Path, stage: str) -> None:
    """An output whose manifest says another stage made it (samples, labels, an eval) is that stage's file: refused,
    with --overwrite too, so that no stage replaces another's output."""
    made_by = None
    if Path(output).exists() and manifest_path(output).exists():
        try:
            made_by = json.loads(manifest_path(output).read_text()).get("stage")
        except (OSError, ValueError, AttributeError):
            return  # an unreadable manifest: is_done treats the output as not done
    if made_by and made_by != stage:
        raise ScpoError(
            f"{output} is scpo {made_by}'s output (its manifest {manifest_path(output)} says so): scpo "
            f"{stage} would replace it; give this stage's output another path"
        )


def run_once(
    stage: str, output: str, config: dict, inputs: list[str], body: Callable[[], dict], overwrite: bool = False
) -> dict:
    """Runs `body` (which writes `output` atomically and returns counts) unless a matching manifest says it is done."""
    check_own_output(output, stage)
    if not overwrite:
        done = is_done(output, config, inputs)
        if done is not None:
            print(f"[{stage}] {output} is up to date ({done['counts']}); skipping")
            return done
    started = time.time()
    counts = body()
    return write_manifest(output, stage, config, inputs, counts, started)


def check_distinct(outputs: dict[str, str], inputs: dict[str, str]) -> None:
    """An output that is also an input would replace the input: refused, naming both settings."""
    for out_name, out in outputs.items():
        for in_name, path in inputs.items():
            if path and out and Path(out).resolve() == Path(path).resolve():
                raise ScpoError(
                    f"settings {out_name} and {in_name} are the same file ({out}): the stage would "
                    f"replace its own input; write {out_name} elsewhere"
                )
