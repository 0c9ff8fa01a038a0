"""Evaluation metrics, pure Python: pass@k (unbiased), majority accuracy, standard errors, vote calibration.

Two Somers' D between votes and correctness:
- per completion (`somers_d`): over pairs of a correct and an incorrect completion, +1 when the correct
  one has the larger vote share, -1 when smaller, 0 when tied, averaged (= 2 AUC - 1 with vote share as
  the score; D of vote share given correctness);
- ScPO's (Appendix A, Table 6: "Somers' D computed between Acc(y) and V(y) for y in {y+, y-}",
  GSM8K 0.80, MATH 0.68, ZebraLogic 0.92): each test problem contributes its most- and least-voted
  response, and `somers_d_given(votes, acc)` is D of accuracy given the votes, (C - D) over the pairs
  not tied in V (scipy.stats.somersd(V, Acc)). The paper does not say which variable is dependent; Acc
  given V is chosen, as "Acc(y) against V(y)" reads.

The one home of the rules that eval, report and compare share: which graded row is one of the k samples
(`is_sampled`: the greedy row has sample_index -1), a problem's pass@1 (`pass_at_1`), its per-problem results
(`problem_results`, `problem_results_from_samples`), paired differences over problems with standard errors
over clusters (`paired_by_problem`), and the "mean ± se" text (`format_mean_se`, `format_metric`).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021) for n samples of which c are correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


GREEDY_INDEX = -1  # eval_samples.jsonl: the sample_index of a problem's greedy completion (not one of its k samples)


def is_sampled(row: dict) -> bool:
    """Whether a graded row of eval_samples.jsonl is one of its problem's k samples (what pass@1, the votes and
    Somers' D count), not the greedy completion (sample_index GREEDY_INDEX; rows without an index are samples)."""
    return int(row.get("sample_index", 0)) != GREEDY_INDEX


def pass_at_1(c: int, n: int) -> float:
    """A problem's pass@1: the share c / n of its n samples that are correct (pass_at_k(n, c, 1) exactly)."""
    return c / n


def mean_and_stderr(values: list[float], clusters: list | None = None) -> tuple[float, float]:
    """The mean and its standard error over independent units.

    Without `clusters` every value is its own unit: sqrt(s^2 / n). With `clusters` (one key per value: rows
    that are wordings of one item share a key) the cluster-robust (CR1) standard error, sqrt(G / (G - 1) *
    sum_g (sum_{i in g} (x_i - mean))^2) / n over G clusters, which is the plain one when every cluster has
    one value (then computed as the plain one); with one cluster there is no independent variation to measure
    and the error is 0.
    """
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    mean = sum(values) / n
    if clusters is not None and len(set(clusters)) == len(clusters) == n:
        clusters = None  # one value per cluster: the plain standard error
    if clusters is None:
        if n == 1:
            return mean, 0.0
        var = sum((v - mean) ** 2 for v in values) / (n - 1)
        return mean, math.sqrt(var / n)
    if len(clusters) != n:
        raise ValueError(f"{len(clusters)} cluster keys for {n} values")
    sums: dict = {}
    for v, key in zip(values, clusters):
        sums[key] = sums.get(key, 0.0) + (v - mean)
    g = len(sums)
    if g < 2:
        return mean, 0.0
    return mean, math.sqrt(g / (g - 1) * sum(x * x for x in sums.values())) / n


def ratio_and_stderr(values: list[float], weights: list[float], clusters: list | None = None) -> tuple[float, float]:
    """A weighted mean sum(w v) / sum(w) (a ratio: ZeroEval's micro cell accuracy, correct cells over all cells,
    with v a puzzle's cell accuracy and w its cell count) and its linearised standard error over independent units
    (each value, or each cluster): sqrt(G / (G - 1) * sum_g (sum_{i in g} w_i (v_i - R))^2) / sum(w)."""
    total = sum(weights)
    if not values or total <= 0:
        return 0.0, 0.0
    ratio = sum(w * v for v, w in zip(values, weights)) / total
    keys = clusters if clusters is not None else list(range(len(values)))
    sums: dict = {}
    for v, w, key in zip(values, weights, keys):
        sums[key] = sums.get(key, 0.0) + w * (v - ratio)
    g = len(sums)
    if g < 2:
        return ratio, 0.0
    return ratio, math.sqrt(g / (g - 1) * sum(x * x for x in sums.values())) / total


CLUSTER_BY = ("none", "id_prefix", "group")


def cluster_key(problem: dict, cluster_by: str) -> str:
    """The independent unit a problem belongs to: itself (none), its id before the first '#' (id_prefix: the
    CPU demo's four wordings `8+4#0..3` of one fact), or its `group` column (group)."""
    pid = str(problem["id"])
    if cluster_by == "id_prefix":
        return pid.split("#", 1)[0]
    if cluster_by == "group":
        return str(problem.get("group", pid))
    return pid


def paired_difference(
    after: dict[str, float], before: dict[str, float], clusters: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """Mean of after - before over the problems both have, its standard error over independent units (clusters:
    problem id -> cluster key; a problem without one is its own), and how many problems were paired."""
    ids = sorted(set(after) & set(before))
    if len(ids) < 2:
        return float("nan"), float("nan"), len(ids)
    keys = [clusters.get(i, i) for i in ids] if clusters else None
    mean, se = mean_and_stderr([after[i] - before[i] for i in ids], keys)
    return mean, se, len(ids)


PER_PROBLEM_METRICS = ("greedy", "pass@1", "maj")  # what problem_results gives, where the eval measured it


def problem_results(row: dict) -> dict:
    """One problem's {greedy, pass@1, maj, cluster} from its eval_per_problem.jsonl row (scpo eval's grade_problem);
    a metric the eval did not measure for it (no greedy, or no samples: eval_k_problems) is absent."""
    pid = str(row["id"])
    out: dict = {"cluster": str(row.get("cluster", pid))}
    if "greedy" in row:
        out["greedy"] = float(row["greedy"])
    if row.get("n"):
        out["pass@1"], out["maj"] = pass_at_1(row["c"], row["n"]), float(row["maj"])
    return out


def problem_results_from_samples(rows) -> dict[str, dict]:
    """{problem id: {greedy, pass@1, cluster}} from eval_samples.jsonl rows (evals written before
    eval_per_problem.jsonl existed): greedy from the greedy row, pass@1 from the sampled rows (`is_sampled`), no maj;
    every problem is its own cluster."""
    out: dict[str, dict] = {}
    hits: dict[str, list[bool]] = {}
    for r in rows:
        pid = str(r["id"])
        row = out.setdefault(pid, {"cluster": pid})
        if is_sampled(r):
            hits.setdefault(pid, []).append(bool(r["correct"]))
        else:
            row["greedy"] = float(bool(r["correct"]))
    for pid, h in hits.items():
        out[pid]["pass@1"] = pass_at_1(sum(h), len(h))
    return out


def paired_by_problem(
    after: dict[str, dict], before: dict[str, dict], metric: str, before_metric: str | None = None
) -> tuple[float, float, int]:
    """after - before in `metric` (problem_results of two evals) over the problems both measured, its standard
    error over the problems' clusters, and the count (`paired_difference`). `before_metric`: another metric on the
    before side (a model's greedy answer against M_0's majority vote: "maj")."""
    before_metric = before_metric or metric
    a = {i: r[metric] for i, r in after.items() if metric in r}
    b = {i: r[before_metric] for i, r in before.items() if before_metric in r}
    clusters = {i: r["cluster"] for i, r in {**before, **after}.items()}
    return paired_difference(a, b, clusters)


def format_mean_se(mean: float, se: float, digits: int = 3, signed: bool = False) -> str:
    """'0.342 ± 0.039' (`signed`: '+0.342 ± 0.039', for differences): how every table writes a value and its SE."""
    return f"{mean:{'+' if signed else ''}.{digits}f} ± {se:.{digits}f}"


def format_metric(ev: dict | None, key: str) -> str:
    """eval.json's metric `key` ({mean, stderr}) as 'mean ± se'; '-' where the eval has no such metric."""
    value = (ev or {}).get(key)
    return format_mean_se(value["mean"], value["stderr"]) if isinstance(value, dict) else "-"


def somers_d(scores: list[float], correct: list[bool]) -> float | None:
    """D of correctness given score; None when every completion is correct or every one is wrong."""
    pos = sorted(s for s, c in zip(scores, correct) if c)
    neg = sorted(s for s, c in zip(scores, correct) if not c)
    if not pos or not neg:
        return None
    concordant = discordant = 0
    for s in pos:
        concordant += bisect_left(neg, s)  # negatives with a lower score
        discordant += len(neg) - bisect_right(neg, s)  # negatives with a higher score
    return (concordant - discordant) / (len(pos) * len(neg))


def calibration(scores: list[float], correct: list[bool], bins: int = 10) -> list[dict]:
    """Accuracy per vote-share bin: [{lo, hi, n, accuracy}], empty bins left out."""
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [c for s, c in zip(scores, correct) if lo <= s < hi or (b == bins - 1 and s == 1.0)]
        if inside:
            out.append({"lo": lo, "hi": hi, "n": len(inside), "accuracy": sum(inside) / len(inside)})
    return out


def somers_d_given(x: list[float], y: list[bool]) -> float | None:
    """Somers' D of binary y given x: (concordant - discordant) / pairs untied in x; None without such pairs."""
    n = len(x)
    counts: dict[float, int] = {}
    for v in x:
        counts[v] = counts.get(v, 0) + 1
    untied = n * (n - 1) // 2 - sum(c * (c - 1) // 2 for c in counts.values())
    if untied == 0:
        return None
    pos = sorted(v for v, c in zip(x, y) if c)
    neg = sorted(v for v, c in zip(x, y) if not c)
    difference = sum(bisect_left(neg, v) - (len(neg) - bisect_right(neg, v)) for v in pos)
    return difference / untied


def majority_accuracy(top_correct: list[bool]) -> tuple[float, bool]:
    """(standard maj@k, conservative maj@k) from the correctness of the answers tied for the most votes.

    Standard: the expected accuracy of a uniform choice among the tied answers (1 / 2 for a correct and a
    wrong answer tied). Conservative: correct only when a single top answer is correct (a tie counts as wrong).
    No answer at all (empty list) is wrong in both.
    """
    if not top_correct:
        return 0.0, False
    return sum(top_correct) / len(top_correct), len(top_correct) == 1 and top_correct[0]
