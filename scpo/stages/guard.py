"""`scpo guard`: the loop's collapse guard, between ScPO iterations (the offline twin of `scpo grpo`'s guard).

After M_t's evals the guard reads every iteration's eval on the dev file (`iter_<t>/guard_eval.json`, made by
`scpo eval --eval_file <guard_file>`; the plan adds it), never the held-out `eval.json`, applies the guard rule
(scpo/training/guard.py: `guard_patience` evals without an improvement of more than `guard_min_delta` in
`guard_metric`, or one drop larger than `guard_max_drop`), and writes `<run>/guard.json` (the metric per
iteration, the best model, the stop) and `<run>/final_model`, a link to the best model so far: M_0 when no
trained model beat it. It recomputes from the eval files every time, so it resumes like any stage. When the
rule stops, `scpo guard` exits with status 3 and recipes/iterate.sh skips to the report (on Slurm the chain
ends there; run `scpo report` by hand).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from scpo.core.blocks import GUARD_EVAL, GuardBlock, StageBlock
from scpo.core.errors import LoopStop, ScpoError
from scpo.core.io import write_json
from scpo.core.models import resolve_model
from scpo.core.settings import parse_settings
from scpo.training.guard import GuardRule


@dataclass
class GuardSettings(StageBlock, GuardBlock):
    """scpo guard: stop the loop when M_t's results on the dev file stop improving, and keep the best model."""

    model: str = "embedded"  # M_t (the plan passes it)
    initial_model: str | None = None  # M_0, the best model when no trained model beats it (the plan passes it)


SETTINGS = GuardSettings


def model_of(run_dir: Path, t: int, initial: str) -> str:
    return initial if t == 0 else str(run_dir / f"iter_{t - 1}" / "model")


def run(s: GuardSettings) -> dict:
    if not s.iter_dir or not s.guard_metric:
        raise ScpoError("scpo guard needs iter_dir (the iteration whose eval is the latest) and guard_metric")
    run_dir = Path(s.iter_dir).parent
    values = []
    for t in range(s.iteration + 1):
        path = run_dir / f"iter_{t}" / GUARD_EVAL
        if not path.exists():
            raise ScpoError(
                f"{path}: missing: the guard compares every iteration's eval on its dev file (run scpo "
                f"eval --eval_file <guard_file> --eval_output {path})"
            )
        try:
            metrics = json.loads(path.read_text())
        except ValueError as e:
            raise ScpoError(f"{path}: not a readable eval ({e}); run its scpo eval again with --overwrite") from None
        if not isinstance(metrics, dict):
            raise ScpoError(
                f"{path}: holds {type(metrics).__name__}, not an eval's metrics; run its scpo eval again "
                "with --overwrite"
            )
        if s.guard_metric not in metrics:
            known = sorted(k for k, v in metrics.items() if isinstance(v, dict) and "mean" in v)
            raise ScpoError(f"setting guard_metric={s.guard_metric!r}: {path} has no such metric; it has {known}")
        value = metrics[s.guard_metric]
        values.append(value["mean"] if isinstance(value, dict) else float(value))
    rule = GuardRule(s.guard_mode, s.guard_patience, s.guard_min_delta, s.guard_max_drop)
    for t, value in enumerate(values):
        _, stop = rule.check(t, value)
        if stop:
            break
    best = model_of(run_dir, rule.best_step, s.initial_model or s.model)
    record = {
        "metric": s.guard_metric,
        "values": {f"M_{t}": v for t, v in enumerate(values)},
        "best_iteration": rule.best_step,
        "best_value": rule.best_value,
        "best_model": best,
        "stopped_after": rule.stopped_at,
        "reason": rule.reason,
    }
    write_json(run_dir / "guard.json", record)
    link, tmp = run_dir / "final_model", run_dir / ".final_model.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.abspath(best if Path(best).exists() else resolve_model(best)), tmp)
    tmp.replace(link)  # atomic: the link always names a finished model
    print(f"[guard] {s.guard_metric} per model {record['values']}: best M_{rule.best_step} ({best})")
    if rule.stopped_at is not None:
        raise LoopStop(
            f"the collapse guard stops the loop after M_{rule.stopped_at}: {rule.reason} since "
            f"M_{rule.best_step}; the run's model is {best} ({link})"
        )
    return record


def main(argv: list[str]) -> dict:
    return run(parse_settings(GuardSettings, argv))
