"""Each problem's results in an eval, and paired differences between two models' evals (report and compare).

`scpo eval` writes one row per problem to `eval_per_problem.jsonl` beside `eval.json` (`sidecar`): greedy correctness,
c correct of n sampled (pass@1 = c / n), the majority vote's accuracy and the problem's cluster (its independent
unit, `cluster_by`). Evals written before that file existed are read from `eval_samples.jsonl`: greedy from the
row with sample_index -1, pass@1 from the sampled rows only (the greedy row is not one of the k samples), no maj.
A difference between two models is paired over the problems both evals have, with its standard error over
clusters (scpo/metrics.py).
"""

from __future__ import annotations

from pathlib import Path

from scpo.core.io import read_rows
from scpo.metrics import paired_difference

METRICS = ("greedy", "pass@1", "maj")  # what per_problem gives, where the eval measured it


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
    out: dict[str, dict] = {}
    if path.exists():
        for r in read_rows(path, allow_empty=True):
            pid = str(r["id"])
            row = out[pid] = {"cluster": str(r.get("cluster", pid))}
            if "greedy" in r:
                row["greedy"] = float(r["greedy"])
            if r.get("n"):
                row["pass@1"], row["maj"] = r["c"] / r["n"], float(r["maj"])
        return out
    samples = sidecar(eval_json, "samples")
    if not samples.exists():
        return out
    hits: dict[str, list[bool]] = {}
    for r in read_rows(samples, allow_empty=True):
        pid = str(r["id"])
        row = out.setdefault(pid, {"cluster": pid})
        if r.get("sample_index", 0) < 0:
            row["greedy"] = float(bool(r["correct"]))
        else:
            hits.setdefault(pid, []).append(bool(r["correct"]))
    for pid, h in hits.items():
        out[pid]["pass@1"] = sum(h) / len(h)
    return out


def paired(after: dict[str, dict], before: dict[str, dict], metric: str) -> tuple[float, float, int]:
    """after - before in `metric` over the problems both measured, its clustered standard error, the count."""
    a = {i: r[metric] for i, r in after.items() if metric in r}
    b = {i: r[metric] for i, r in before.items() if metric in r}
    clusters = {i: r["cluster"] for i, r in {**before, **after}.items()}
    return paired_difference(a, b, clusters)
