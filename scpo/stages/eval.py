"""`scpo eval`: held-out accuracy of a model: greedy, sampled pass@1, pass@k, maj@k, and vote calibration.

Runs the same sampler as `scpo sample` (vLLM by default) on an eval file with gold answers.
Writes `eval.json` (each metric with its standard error over problems, Somers' D between vote share
and correctness, accuracy per vote-share bin), `eval_samples.jsonl` (every graded completion) and
`eval_per_problem.jsonl` (each problem's greedy, sampled and majority results, for paired differences).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from scpo.core.blocks import DecodingBlock, EngineBlock, ModelBlock, StageBlock, TaskBlock
from scpo.core.errors import ScpoError
from scpo.core.io import check_writable, read_rows, write_json, write_rows
from scpo.core.manifest import check_distinct, iter_file, run_once
from scpo.core.models import model_fingerprint, resolve_model
from scpo.core.rows import EVAL_FIELDS, prompt_of
from scpo.core.settings import parse_settings
from scpo.metrics import (
    CLUSTER_BY,
    GREEDY_INDEX,
    calibration,
    cluster_key,
    format_mean_se,
    is_sampled,
    majority_accuracy,
    mean_and_stderr,
    pass_at_1,
    pass_at_k,
    ratio_and_stderr,
    somers_d,
    somers_d_given,
)
from scpo.reporting.per_problem import sidecar
from scpo.sampling import Request, make_sampler, prompt_ids, request_seed
from scpo.tasks import Task, get_task
from scpo.voting import UNPARSED, vote


@dataclass
class EvalSettings(StageBlock, EngineBlock, DecodingBlock, TaskBlock, ModelBlock):
    """scpo eval: held-out greedy accuracy, sampled pass@1, pass@k, maj@k and vote calibration of a model."""

    OUTPUTS = ("eval_output",)  # checked against every other path setting (scpo/core/settings.py)

    eval_file: str | None = None  # held-out problems with gold answers; default <iter_dir>/eval_problems.jsonl
    eval_output: str | None = None  # default <iter_dir>/eval.json (and <stem>_samples.jsonl, <stem>_per_problem.jsonl)
    eval_k: int = 8  # samples per problem for pass@k and maj@k (0: greedy only, e.g. dev checkpoint selection)
    eval_temperature: float = 0.7  # their temperature
    eval_top_p: float | None = None  # their nucleus sampling (default: top_p); TTRL's eval: T 0.6, top_p 0.95
    greedy: bool = True  # also one greedy completion per problem
    max_eval_problems: int | None = None  # only the first N problems
    cluster_by: str = "none"  # the independent units of the standard errors: none (each problem) | id_prefix (ids
    # `fact#0..3`: one unit per fact, the CPU demo's four wordings) | group (a `group` column)
    eval_k_problems: int | None = None  # sample k only for the first N problems (the rest greedy only): pass@1 and
    # maj@k on a subset, greedy on all, e.g. 400 GSM8K test problems greedy and 128 of them k 8 on a CPU
    eval_max_tokens: int | None = None  # new tokens per evaluated completion (default: max_tokens, the sampling
    # length); ZeroEval evaluates ZebraLogic with 4096 while training samples may be shorter

    HASHED_WHEN_SET = (
        "eval_top_p",
        "eval_k_problems",
        "cluster_by",
        "eval_max_tokens",
    )  # joined later: unset, the manifests of earlier runs still match

    def __post_init__(self):
        super().__post_init__()
        if self.eval_k < 0 or (self.eval_k == 0 and not self.greedy):
            raise ScpoError(f"setting eval_k={self.eval_k}: need samples per problem (>= 1), or 0 with greedy: true")
        if self.cluster_by not in CLUSTER_BY:
            raise ScpoError(f"setting cluster_by={self.cluster_by!r}: one of {', '.join(CLUSTER_BY)}")
        if self.eval_k_problems is not None and (self.eval_k_problems < 1 or not self.greedy):
            raise ScpoError(
                f"setting eval_k_problems={self.eval_k_problems}: needs a count >= 1 and greedy: true "
                "(the problems beyond it are evaluated greedily only)"
            )
        if self.eval_max_tokens is not None:
            if self.eval_max_tokens < 1:
                raise ScpoError(f"setting eval_max_tokens={self.eval_max_tokens}: must be at least 1")
            if self.max_model_len and self.eval_max_tokens >= self.max_model_len:
                raise ScpoError(
                    f"setting eval_max_tokens={self.eval_max_tokens} leaves no room for a prompt in "
                    f"max_model_len={self.max_model_len}: raise max_model_len or lower eval_max_tokens"
                )


SETTINGS = EvalSettings


def grade_problem(problem: dict, sampled: list[str], greedy: str | None, task: Task) -> tuple[dict, list[dict]]:
    """Per-problem results and per-completion rows (answer, correct, vote share)."""
    gold = task.extract_gold(problem["gold"])
    answers = [task.extract(text) for text in sampled]
    votes = vote(answers, task)
    group_ok = [gold is not None and task.equivalent(g.answer, gold) for g in votes.groups]
    correct = [g != UNPARSED and group_ok[g] for g in votes.group_of]
    k = len(sampled)
    rows = [
        {
            "id": problem["id"],
            "sample_index": i,
            "completion": text,
            "answer": answers[i],
            "correct": correct[i],
            "vote_share": votes.votes_of(i) / k,
        }
        for i, text in enumerate(sampled)
    ]
    result = {
        "id": problem["id"],
        "c": sum(correct),
        "n": k,
        "gold_parsed": gold is not None,
        "no_answer": sum(a is None for a in answers),
        "subset": task.subset(problem),
    }
    credit = task.partial_credit and gold is not None  # e.g. zebra's cell accuracy
    if k:
        top = [gi for gi, g in enumerate(votes.groups) if g.votes == votes.top_votes and g.votes > 0]
        result["maj"], result["maj_strict"] = majority_accuracy([group_ok[gi] for gi in top])
        result["extremes"] = extremes(votes, group_ok)
        if credit:
            result["credit@1"] = sum(task.score(a, gold) for a in answers) / k
            result["maj_credit"] = (
                sum(task.score(votes.groups[gi].answer, gold) for gi in top) / len(top) if top else 0.0
            )
            if getattr(task, "cell_votes", False):
                cellwise = task.cell_majority(answers)
                result["cellwise"] = cellwise is not None and task.equivalent(cellwise, gold)
                result["cellwise_credit"] = task.score(cellwise, gold)
    if credit:
        result["credit_units"] = task.credit_units(gold)
    if greedy is not None:
        answer = task.extract(greedy)
        result["greedy"] = answer is not None and gold is not None and task.equivalent(answer, gold)
        result["greedy_no_answer"] = answer is None
        if credit:
            result["greedy_credit"] = task.score(answer, gold)
        rows.append(
            {
                "id": problem["id"],
                "sample_index": GREEDY_INDEX,
                "completion": greedy,
                "answer": answer,
                "correct": result["greedy"],
                "vote_share": None,
            }
        )
    return result, rows


def extremes(votes, group_ok: list[bool]) -> list[tuple[int, bool]]:
    """(V, Acc) of the most- and the least-voted response (ScPO's y+ and y-; the unparseable group can be y-)."""
    if not votes.groups or votes.top_votes == 0:
        return []
    candidates = [(g.votes, ok) for g, ok in zip(votes.groups, group_ok)]
    if votes.unparsed_votes:
        candidates.append((votes.unparsed_votes, False))
    return [candidates[0], min(candidates[1:] or candidates[:1], key=lambda c: c[0])]


def summarize(results: list[dict], rows: list[dict], k: int, credit: str | None = None) -> dict:
    """Every metric with its standard error over problems; `credit`: the task's partial-credit name (zebra:
    cell_accuracy, reported for greedy, per sample and for the majority answer); per subset (zebra: easy / hard)
    the accuracies again."""

    def stat(values, micro: bool = False):  # over `over`: the problems the values come from, one value each
        values = [float(v) for v in values]
        clusters = [r.get("cluster", r["id"]) for r in over]  # all distinct: the plain standard error
        if micro:  # a partial-credit metric pools its units (zebra: correct cells over all cells, as ZeroEval)
            mean, se = ratio_and_stderr(values, [r.get("credit_units", 1) for r in over], clusters)
        else:
            mean, se = mean_and_stderr(values, clusters)
        return {"mean": round(mean, 4), "stderr": round(se, 4)}

    metrics: dict = {"problems": len(results), "k": k}
    clusters = {r.get("cluster", r["id"]) for r in results}
    if len(clusters) < len(results):  # standard errors over clusters, not rows (scpo/metrics.py)
        metrics["clusters"] = len(clusters)
    if k:
        full, results = results, [r for r in results if r["n"]]  # eval_k_problems: the sampled subset
        metrics["problems_sampled"] = len(results)
        over = results
        metrics.update(
            {
                "pass@1": stat(pass_at_1(r["c"], r["n"]) for r in results),
                f"pass@{k}": stat(pass_at_k(r["n"], r["c"], k) for r in results),
                f"maj@{k}": stat(r["maj"] for r in results),
                f"maj@{k}_strict": stat(r["maj_strict"] for r in results),
                "no_answer": stat(r["no_answer"] / r["n"] for r in results),
            }
        )
        results = full
    over = results
    if results and "greedy" in results[0]:
        metrics["greedy"] = stat(r["greedy"] for r in results)
        metrics["greedy_no_answer"] = stat(r["greedy_no_answer"] for r in results)
    graded = [r for r in results if r["gold_parsed"]]
    if credit and graded:
        over = graded
        if "greedy_credit" in graded[0]:
            metrics[f"greedy_{credit}"] = stat((r["greedy_credit"] for r in graded), micro=True)
        sampled_graded = over = [r for r in graded if r["n"]]
        if sampled_graded and "credit@1" in sampled_graded[0]:
            metrics[f"{credit}@1"] = stat((r["credit@1"] for r in sampled_graded), micro=True)
            metrics[f"maj@{k}_{credit}"] = stat((r["maj_credit"] for r in sampled_graded), micro=True)
        if sampled_graded and "cellwise" in sampled_graded[0]:
            metrics[f"maj@{k}_by_cell"] = stat(r["cellwise"] for r in sampled_graded)
            metrics[f"maj@{k}_by_cell_{credit}"] = stat((r["cellwise_credit"] for r in sampled_graded), micro=True)
    if k:
        sampled = [r for r in rows if is_sampled(r)]
        shares, correct = [r["vote_share"] for r in sampled], [r["correct"] for r in sampled]
        d = somers_d(shares, correct)
        metrics["somers_d"] = None if d is None else round(d, 4)
        points = [p for r in results for p in r.get("extremes", [])]
        d = somers_d_given([v for v, _ in points], [ok for _, ok in points])
        metrics["somers_d_scpo"] = None if d is None else round(d, 4)
        metrics["calibration"] = calibration(shares, correct)
    subsets = sorted({r["subset"] for r in results if r.get("subset") is not None})
    if subsets:
        metrics["subsets"] = {}
        for name in subsets:
            part = [r for r in results if r.get("subset") == name]
            ids = {str(r["id"]) for r in part}
            inner = summarize(
                [{**r, "subset": None} for r in part], [row for row in rows if str(row["id"]) in ids], k, credit
            )
            metrics["subsets"][name] = {key: v for key, v in inner.items() if key != "calibration"}
    unparsed_gold = sum(not r["gold_parsed"] for r in results)
    if unparsed_gold:
        metrics["gold_unparsed"] = unparsed_gold
    return metrics


def run(s: EvalSettings) -> dict:
    eval_file = iter_file(s.iter_dir, s.eval_file, "eval_problems.jsonl")
    output = iter_file(s.iter_dir, s.eval_output, "eval.json")
    check_distinct({"eval_output": output}, {"eval_file": eval_file})
    check_writable(output, "eval_output")
    problems = read_rows(eval_file, required=EVAL_FIELDS)
    if s.max_eval_problems:
        problems = problems[: s.max_eval_problems]
    model_path = resolve_model(s.model)
    task = get_task(s.task, **s.task_options)
    for line, p in enumerate(problems, 1):
        why = task.check_problem(p)
        if why:
            raise ScpoError(f"{eval_file}:{line}: problem {p['id']!r}: {why}")
    config = s.hashed(leave_out=("iter_dir", "eval_output", "overwrite", "iteration"))
    config.update(model=model_path, model_weights=model_fingerprint(model_path))

    def body() -> dict:
        top_p = s.top_p if s.eval_top_p is None else s.eval_top_p
        sampler = make_sampler(
            model_path, s, top_p=top_p, top_k=s.top_k, max_tokens=s.eval_max_tokens or s.max_tokens, stop=s.stop
        )
        tok = sampler.tokenizer()
        requests, kept, where = [], [], []  # where: per kept problem, (its sampled request or None, its greedy one)
        for p in problems:
            ids = prompt_ids(tok, prompt_of(p, task))
            if len(ids) >= sampler.max_model_len:
                print(f"[eval] warning: problem {p['id']!r} is longer than max_model_len; not evaluated")
                continue
            kept.append(p)
            key = f"eval:{p['id']}"
            sampled_at = None
            if s.eval_k and (s.eval_k_problems is None or len(kept) <= s.eval_k_problems):
                sampled_at = len(requests)
                requests.append(Request(key, ids, s.eval_k, s.eval_temperature, request_seed(s.seed, key)))
            if s.greedy:
                requests.append(Request(key + ":greedy", ids, 1, 0.0, request_seed(s.seed, key + ":greedy")))
            where.append((sampled_at, len(requests) - 1 if s.greedy else None))
        outputs = sampler.generate(requests)
        results, rows = [], []
        for p, (sampled_at, greedy_at) in zip(kept, where):
            sampled = [g.text for g in outputs[sampled_at]] if sampled_at is not None else []
            greedy = outputs[greedy_at][0].text if greedy_at is not None else None
            result, graded = grade_problem(p, sampled, greedy, task)
            results.append({**result, "cluster": cluster_key(p, s.cluster_by)})
            rows.extend(graded)
        if not results:
            raise ScpoError(f"{eval_file}: no problem fits max_model_len; nothing was evaluated")
        metrics = summarize(results, rows, s.eval_k, task.partial_credit)
        metrics["skipped_too_long"] = len(problems) - len(kept)
        metrics["output_tokens"] = sum(g.num_tokens for out in outputs for g in out)
        metrics["engine_dtype"] = sampler.dtype  # `dtype: auto` is the CPU's: evals at other precisions differ
        if metrics.get("gold_unparsed"):
            print(
                f"[eval] warning: {metrics['gold_unparsed']} problem(s) of {eval_file} have a gold answer the task "
                "cannot parse; they count as wrong",
                file=sys.stderr,
            )
        write_rows(sidecar(output, "samples"), rows)
        write_rows(sidecar(output, "per_problem"), results)  # paired differences between models read it
        write_json(output, {**metrics, "model": model_path, "eval_file": eval_file})
        print(
            f"[eval] {output}: "
            + ", ".join(
                f"{k} {format_mean_se(v['mean'], v['stderr'])}"
                for k, v in metrics.items()
                if isinstance(v, dict) and "mean" in v
            )
        )
        return {k: v for k, v in metrics.items() if k != "calibration"}

    return run_once("eval", output, config, [eval_file], body, s.overwrite)


def main(argv: list[str]) -> dict:
    return run(parse_settings(EvalSettings, argv))
