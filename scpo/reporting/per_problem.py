"""Each problem's results in an eval, read from the files scpo eval writes (report and compare pair them).

`scpo eval` writes one row per problem to `eval_per_problem.jsonl` beside `eval.json` (`sidecar`): greedy correctness,
c correct of n sampled, the majority vote's accuracy and the problem's cluster (its independent unit, `cluster_by`).
Evals written before that file existed are read from `eval_samples.jsonl`. What a row means (pass@1, which row is
greedy) and the paired differences between two models are scpo/metrics.py's; this module finds and reads the files.
"""

from __future__ import annotations

from pathlib import Path

from scpo.core.io import read_rows
from scpo.metrics import problem_results, problem_results_from_samples


def sidecar(eval_json: Path | str, kind: str) -> Path:
    """The file of `kind` (samples | per_problem) that scpo eval writes beside its output, named after it:
    eval.json -> eval_samples.jsonl, guard_eval.json -> guard_eval_samples.jsonl (two evals in one folder never
    write over each other's rows)."""
    path = Path(eval_json)
    return path.with_name(f"{path.stem}_{kind}.jsonl")


def per_problem(eval_json: Path) -> dict[str, dict]:
    """{problem id: {greedy, pass@1, maj, cluster}} (a metric the eval did not measure for a problem is absent)."""
    eval_json = Path(eval_json)
    path = sidecar(eval_json, "per_problem")
    if path.exists():
        return {str(r["id"]): problem_results(r) for r in read_rows(path, allow_empty=True)}
    samples = sidecar(eval_json, "samples")
    if not samples.exists():
        return {}
    return problem_results_from_samples(read_rows(samples, allow_empty=True))
