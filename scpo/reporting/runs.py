"""The report of a loop run (`scpo report runs/<run>`): per-iteration tables (Markdown) and plots (PNG).

Reads only the stage files: each iter_<t>/ has the eval of M_t (eval.json) and, for t < T, the
label / pairs / train manifests of the step that trained M_{t+1}. Writes report.md,
metrics.png (held-out metrics over iterations, with standard errors) and calibration.png (accuracy
against vote share, per iteration).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from scpo.core.errors import ScpoError


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def collect(run_dir: Path) -> list[dict]:
    iters = sorted((int(m.group(1)), p) for p in run_dir.glob("iter_*") if (m := re.fullmatch(r"iter_(\d+)", p.name)))
    if not iters:
        raise ScpoError(f"{run_dir}: no iter_<t> folders; is this a run directory?")
    rows = []
    for t, path in iters:
        row = {"iteration": t, "eval": _load(path / "eval.json")}
        for stage, name in (("sample", "samples.jsonl"), ("label", "labels.jsonl"), ("pairs", "pairs.jsonl"),
                            ("train", "model")):
            row[stage] = _load(path / f"{name}.manifest.json")
        row["generate"] = _load(path / "generated_problems.jsonl.manifest.json")
        row["eval_time"] = (_load(path / "eval.json.manifest.json") or {}).get("seconds")
        rows.append(row)
    return rows


def per_problem_pass1(iter_dir: Path) -> dict[str, float]:
    from scpo.core.io import read_rows

    path = iter_dir / "eval_samples.jsonl"
    if not path.exists():
        return {}
    hits: dict[str, list[bool]] = {}
    for row in read_rows(path, allow_empty=True):
        if row.get("vote_share") is not None:  # sampled, not greedy
            hits.setdefault(str(row["id"]), []).append(bool(row["correct"]))
    return {k: sum(v) / len(v) for k, v in hits.items()}


def paired_gain(before: Path, after: Path) -> tuple[float, float, int] | None:
    """Mean per-problem pass@1 gain and its standard error over the problems both evals share."""
    from scpo.metrics import mean_and_stderr

    a, b = per_problem_pass1(before), per_problem_pass1(after)
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        return None
    gain, se = mean_and_stderr([b[k] - a[k] for k in shared])
    return gain, se, len(shared)


def _metric(ev: dict | None, key: str) -> str:
    if not ev or key not in ev:
        return "-"
    return f"{ev[key]['mean']:.3f} ± {ev[key]['stderr']:.3f}"


def _d(ev: dict | None, key: str) -> str:
    return "-" if not ev or ev.get(key) is None else f"{ev[key]:.2f}"


def markdown(rows: list[dict], run_dir: Path) -> str:
    k = next((r["eval"]["k"] for r in rows if r["eval"]), 8)
    lines = [f"# scpo run {run_dir.name}", "",
             "Held-out evaluation of M_t (mean ± standard error over problems), and the step that trained M_t+1 from it. "
             f"maj@{k}: a tie for the most votes scores the share of correct tied answers; strict: a tie is wrong. "
             "Somers' D: ScPO's (Acc given V over each problem's most- and least-voted response) and per completion "
             "(vote share given correctness).",
             "", f"| t | greedy | pass@1 | maj@{k} | maj@{k} strict | pass@{k} | Somers' D (ScPO) | Somers' D "
             "(completions) | pairs | mean weight | chosen acc. | sample s | train s | train loss |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ev, pairs, train, sample = r["eval"], (r["pairs"] or {}).get("counts", {}), r["train"] or {}, r["sample"] or {}
        lines.append("| " + " | ".join([
            str(r["iteration"]), _metric(ev, "greedy"), _metric(ev, "pass@1"), _metric(ev, f"maj@{k}"),
            _metric(ev, f"maj@{k}_strict"), _metric(ev, f"pass@{k}"), _d(ev, "somers_d_scpo"), _d(ev, "somers_d"),
            str(pairs.get("pairs", "-")), str(pairs.get("mean_weight", "-")), str(pairs.get("chosen_accuracy", "-")),
            str(sample.get("seconds", "-")), str(train.get("seconds", "-")),
            str(train.get("counts", {}).get("train_loss", "-"))]) + " |")
    evals = [r for r in rows if r["eval"]]
    if len(evals) >= 2 and all("pass@1" in r["eval"] for r in (evals[0], evals[-1])):  # eval_k 0: greedy only
        first, last = evals[0], evals[-1]
        a, b = first["eval"]["pass@1"]["mean"], last["eval"]["pass@1"]["mean"]
        paired = paired_gain(run_dir / f"iter_{first['iteration']}", run_dir / f"iter_{last['iteration']}")
        if paired:
            gain, se, n = paired
            how = f"paired over the same {n} problems: standard error {se * 100:.1f} points, {gain / se:.1f} SE" \
                if se else f"paired over the same {n} problems"
        else:
            gain = b - a
            se = (first["eval"]["pass@1"]["stderr"] ** 2 + last["eval"]["pass@1"]["stderr"] ** 2) ** 0.5
            how = f"standard error of the difference {se * 100:.1f} points"
        lines += ["", f"Sampled pass@1 on held-out problems: M_{first['iteration']} {a:.3f} -> "
                      f"M_{last['iteration']} {b:.3f} ({gain * 100:+.1f} points; {how})."]
    guard = _load(run_dir / "guard.json")
    if guard:
        stop = (f"stopped after M_{guard['stopped_after']} ({guard['reason']})" if guard.get("stopped_after") is not None
                else "not stopped")
        lines += ["", f"Collapse guard on {guard['metric']}: best M_{guard['best_iteration']} "
                      f"({guard['best_value']:.3f}), {stop}; the run's model (final_model) is {guard['best_model']}."]
    lines += answers_table(rows, k)
    lines += sampling_table(rows)
    lines += labeler_table(rows)
    lines += selection_table(rows)
    lines += ["", "![metrics](metrics.png)", "", "![calibration](calibration.png)", ""]
    if any(dev_curve(r) for r in rows):
        lines += ["![checkpoint selection](selection.png)", ""]
    return "\n".join(lines)


def answers_table(rows: list[dict], k: int) -> list[str]:
    """No-answer rates, a task's partial credit (zebra: cell accuracy) and its subsets (zebra: easy / hard puzzles),
    the columns the evals have."""
    evals = [r for r in rows if r["eval"]]
    columns = [(f"{name}", key) for name, key in (("no answer (greedy)", "greedy_no_answer"),
                                                 ("no answer (sampled)", "no_answer"))]
    credit = sorted({key[len("greedy_"):] for r in evals for key in r["eval"] if key.startswith("greedy_")
                     and key != "greedy_no_answer"})
    for name in credit:
        columns += [(f"greedy {name}", f"greedy_{name}"), (f"{name}@1", f"{name}@1"), (f"maj@{k} {name}", f"maj@{k}_{name}")]
    columns += [(f"maj@{k} by cell", f"maj@{k}_by_cell")]
    subsets = sorted({name for r in evals for name in r["eval"].get("subsets", {})})
    columns = [(n, key) for n, key in columns if any(key in r["eval"] for r in evals)]
    if not columns and not subsets:
        return []
    header = [n for n, _ in columns] + [f"{name} {m}" for name in subsets for m in ("greedy", f"maj@{k}")]
    lines = ["", "Answers: how often none could be read" + (", partial credit" if credit else "") +
             (", and per subset (" + ", ".join(subsets) + ")" if subsets else "") + ".", "",
             "| t | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for r in evals:
        ev = r["eval"]
        cells = [_metric(ev, key) for _, key in columns]
        cells += [_metric(ev.get("subsets", {}).get(name), m) for name in subsets for m in ("greedy", f"maj@{k}")]
        lines.append(f"| {r['iteration']} | " + " | ".join(cells) + " |")
    return lines


def dev_curve(row: dict) -> list[dict]:
    return ((row["train"] or {}).get("counts") or {}).get("dev_curve") or []


def selection_table(rows: list[dict]) -> list[str]:
    """Checkpoint selection on the dev split (ScPO §3): each epoch's dev metric, and the epoch kept, per iteration."""
    out = []
    for r in rows:
        curve = dev_curve(r)
        if not curve:
            continue
        counts = r["train"]["counts"]
        cells = ", ".join(f"{e['epoch']}: {e['value']:.3f}" for e in curve)
        out.append(f"| {r['iteration']} | {counts.get('select_metric', '-')} | {cells} | {counts.get('selected_epoch')} |")
    if not out:
        return []
    return ["", "Checkpoint selection on the dev split: the dev metric after each epoch of the step that trained "
            "M_t+1, and the epoch kept as M_t+1.", "", "| t | metric | dev by epoch | kept |", "|---|---|---|---|",
            *out]


def sampling_table(rows: list[dict]) -> list[str]:
    """Adaptive sampling and new problems per iteration, when the run used them."""
    out = []
    for r in rows:
        sample = (r["sample"] or {}).get("counts", {})
        gen = (r["generate"] or {}).get("counts", {})
        pairs = (r["pairs"] or {}).get("counts", {})
        if "samples_drawn" not in sample and not gen:
            continue
        per_prompt = changed = "-"
        if "samples_drawn" in sample and sample.get("prompts_sampled"):
            per_prompt = f"{sample['samples_drawn'] / sample['prompts_sampled']:.2f}"
        if sample.get("audit_prompts"):
            changed = f"{sample['audit_majority_changed'] / sample['audit_prompts']:.1%} of {sample['audit_prompts']}"
        dropped = ", ".join(f"{k} {v}" for k, v in gen.get("dropped", {}).items()) or "-"
        out.append(f"| {r['iteration']} | {per_prompt} | {sample.get('stopped_early', '-')} | {changed} | "
                   f"{gen.get('candidates', '-')} | {gen.get('kept', '-')} | {dropped} | "
                   f"{pairs.get('generated_pairs', '-')} |")
    if not out:
        return []
    return ["", "Sampling of M_t's training data: adaptive samples per prompt (and how often the audited full-k "
            "majority differs), and the new problems M_t wrote (kept after near-duplicate removal; a pair "
            "only when their vote reached tau).", "",
            "| t | samples / prompt | stopped early | majority changed (audit) | new problems | kept | dropped | "
            "gave a pair |", "|---|---|---|---|---|---|---|---|", *out]


def labeler_table(rows: list[dict]) -> list[str]:
    """Internal-reward labelers (judge, implicit, cream, scir) per iteration, when the run used them."""
    out = []
    for r in rows:
        label = (r["label"] or {}).get("counts", {})
        pairs = (r["pairs"] or {}).get("counts", {})
        if label.get("labeler", "votes") == "votes" and pairs.get("labeler", "votes") == "votes":
            continue
        c = "-"
        if "consistency_mean" in pairs:
            c = f"{pairs['consistency_mean']:.3f} ± {pairs['consistency_std']:.3f}"
            if not pairs.get("consistency_from_previous", True):
                c += " (no previous model: C = 1)"
        unparsed = "-" if label.get("judge_unparsed_share") is None else \
            f"{label['judge_unparsed_share']:.1%} of {label['judge_outputs']}"
        agreement = "-" if pairs.get("agreement_rate") is None else f"{pairs['agreement_rate']:.1%}"
        out.append(f"| {r['iteration']} | {pairs.get('labeler', label.get('labeler', '-'))} | "
                   f"{pairs.get('pairs', '-')} of {pairs.get('prompts', '-')} | {c} | {agreement} | "
                   f"{label.get('mean_judge_score', '-')} | {unparsed} | {pairs.get('mean_reward_gap', '-')} | "
                   f"{pairs.get('chosen_accuracy', '-')} |")
    if not out:
        return []
    caption = ("Internal-reward labels of M_t's samples: pairs kept (of prompts), CREAM consistency "
               "C = (Kendall tau + 1) / 2 over the kept pairs (mean ± standard deviation), SCIR agreement rate "
               "(pairs on which every reward agrees / candidate pairs), the judge's mean score and its unreadable "
               "outputs (excluded), the pairs' mean reward gap, and how often the chosen answer is correct "
               "(gold, for reporting only).")
    header = ("| t | labeler | pairs kept | consistency C | agreement | mean judge score | judge unparsed | "
              "reward gap | chosen acc. |")
    return ["", caption, "", header, "|---|---|---|---|---|---|---|---|---|", *out]


def plot(rows: list[dict], run_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r for r in rows if r["eval"]]
    if not evals:
        return []
    k = evals[0]["eval"]["k"]
    fig, ax = plt.subplots(figsize=(6, 4))
    credit = [key for key in evals[0]["eval"] if key.startswith("greedy_") and key != "greedy_no_answer"]
    for key in ["greedy", "pass@1", f"maj@{k}", f"pass@{k}"] + credit:
        pts = [(r["iteration"], r["eval"][key]) for r in evals if key in r["eval"]]
        if pts:
            ax.errorbar([t for t, _ in pts], [m["mean"] for _, m in pts], yerr=[m["stderr"] for _, m in pts],
                        marker="o", capsize=3, label=key)
    ax.set(xlabel="iteration t (model M_t)", ylabel="held-out accuracy", title=f"scpo run {run_dir.name}")
    ax.set_xticks([r["iteration"] for r in evals])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "metrics.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in evals:
        bins = r["eval"].get("calibration") or []
        if bins:
            ax.plot([(b["lo"] + b["hi"]) / 2 for b in bins], [b["accuracy"] for b in bins], marker="o",
                    label=f"M_{r['iteration']} (D={r['eval'].get('somers_d')})")
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1)
    ax.set(xlabel="vote share of the answer", ylabel="accuracy", title="vote share vs accuracy", xlim=(0, 1),
           ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "calibration.png", dpi=120)
    plt.close(fig)
    written = [run_dir / "metrics.png", run_dir / "calibration.png"]
    selected = [r for r in rows if dev_curve(r)]
    if selected:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in selected:
            curve, counts = dev_curve(r), r["train"]["counts"]
            line, = ax.plot([e["epoch"] for e in curve], [e["value"] for e in curve], marker="o",
                            label=f"M_{r['iteration']} -> M_{r['iteration'] + 1}")
            kept = next(e for e in curve if e["epoch"] == counts["selected_epoch"])
            ax.plot([kept["epoch"]], [kept["value"]], marker="*", markersize=16, color=line.get_color())
        ax.set(xlabel="epoch", ylabel=f"dev {selected[0]['train']['counts'].get('select_metric', '')}",
               title="checkpoint selection on dev (star: kept)")
        ax.set_xticks(sorted({e["epoch"] for r in selected for e in dev_curve(r)}))
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(run_dir / "selection.png", dpi=120)
        plt.close(fig)
        written.append(run_dir / "selection.png")
    return written


def write_report(run_dir: Path, text: str) -> str:
    from scpo.core.io import atomic_path

    with atomic_path(run_dir / "report.md") as tmp:
        tmp.write_text(text)
    print(text)
    print(f"[report] {run_dir / 'report.md'}")
    return text
