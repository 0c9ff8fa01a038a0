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
from scpo.metrics import PER_PROBLEM_METRICS, format_mean_se, format_metric, paired_by_problem
from scpo.reporting.per_problem import per_problem


def _load(path: Path, unreadable: list[str] | None = None) -> dict | None:
    """A stage file's JSON object; None when it is missing, or (noted in `unreadable`) cut short or not an object."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        value, why = None, f"{type(e).__name__}: {e}"
    else:
        why = None if isinstance(value, dict) else f"holds {type(value).__name__}, not an object"
    if why is not None:
        if unreadable is not None:
            unreadable.append(f"{path} ({why})")
        return None
    return value


def collect(run_dir: Path) -> list[dict]:
    iters = sorted((int(m.group(1)), p) for p in run_dir.glob("iter_*") if (m := re.fullmatch(r"iter_(\d+)", p.name)))
    if not iters:
        raise ScpoError(f"{run_dir}: no iter_<t> folders; is this a run directory?")
    rows = []
    for t, path in iters:
        bad: list[str] = []
        row = {"iteration": t, "eval": _load(path / "eval.json", bad)}
        for stage, name in (
            ("sample", "samples.jsonl"),
            ("label", "labels.jsonl"),
            ("pairs", "pairs.jsonl"),
            ("train", "model"),
        ):
            row[stage] = _load(path / f"{name}.manifest.json", bad)
        row["generate"] = _load(path / "generated_problems.jsonl.manifest.json", bad)
        row["eval_time"] = (_load(path / "eval.json.manifest.json", bad) or {}).get("seconds")
        row["unreadable"] = bad
        rows.append(row)
    return rows


def unreadable(rows: list[dict]) -> list[str]:
    """The stage files that exist but could not be read (a killed write from before writes were atomic, an edit)."""
    return [b for r in rows for b in r.get("unreadable", [])]


def unreadable_lines(rows: list[dict]) -> list[str]:
    """The report's note on unreadable files: their cells read "-", and this says why and how to remake them."""
    bad = unreadable(rows)
    if not bad:
        return []
    return [
        "",
        "Files that could not be read (their cells show -); delete each and re-run its stage (`scpo eval`, "
        "`scpo sample`, ...) to remake it:",
        "",
        *(f"- {b}" for b in bad),
    ]


def _d(ev: dict | None, key: str) -> str:
    return "-" if not ev or ev.get(key) is None else f"{ev[key]:.2f}"


def markdown(rows: list[dict], run_dir: Path, plots: list[Path] | None = None) -> str:
    """The run's report; `plots` are the figures `plot` wrote (linked only when written)."""
    k = next((r["eval"]["k"] for r in rows if r["eval"]), 8)
    lines = [
        f"# scpo run {run_dir.name}",
        "",
        "Held-out evaluation of M_t (mean ± standard error over problems), and the step that trained M_t+1 from it. "
        f"maj@{k}: a tie for the most votes scores the share of correct tied answers; strict: a tie is wrong. "
        "Somers' D: ScPO's (Acc given V over each problem's most- and least-voted response) and per completion "
        "(vote share given correctness).",
        "",
        f"| t | greedy | pass@1 | maj@{k} | maj@{k} strict | pass@{k} | Somers' D (ScPO) | Somers' D "
        "(completions) | pairs | mean weight | chosen acc. | sample s | train s | train loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ev, pairs, train, sample = r["eval"], (r["pairs"] or {}).get("counts", {}), r["train"] or {}, r["sample"] or {}
        lines.append(
            "| "
            + " | ".join(
                [
                    str(r["iteration"]),
                    *(
                        format_metric(ev, key)
                        for key in ("greedy", "pass@1", f"maj@{k}", f"maj@{k}_strict", f"pass@{k}")
                    ),
                    _d(ev, "somers_d_scpo"),
                    _d(ev, "somers_d"),
                    str(pairs.get("pairs", "-")),
                    str(pairs.get("mean_weight", "-")),
                    str(pairs.get("chosen_accuracy", "-")),
                    str(sample.get("seconds", "-")),
                    str(train.get("seconds", "-")),
                    str(train.get("counts", {}).get("train_loss", "-")),
                ]
            )
            + " |"
        )
    lines += paired_table(rows, run_dir, k)
    guard = _load(run_dir / "guard.json")
    if guard:
        stop = (
            f"stopped after M_{guard['stopped_after']} ({guard['reason']})"
            if guard.get("stopped_after") is not None
            else "not stopped"
        )
        lines += [
            "",
            f"Collapse guard on {guard['metric']}: best M_{guard['best_iteration']} "
            f"({guard['best_value']:.3f}), {stop}; the run's model (final_model) is {guard['best_model']}.",
        ]
    lines += answers_table(rows, k)
    lines += votes_table(rows)
    lines += stages_table(run_dir, rows)
    lines += sampling_table(rows)
    lines += labeler_table(rows)
    lines += selection_table(rows)
    lines += unreadable_lines(rows)
    names = {p.name for p in plots or []}
    for name, title in (("metrics", "metrics"), ("calibration", "calibration"), ("selection", "checkpoint selection")):
        if f"{name}.png" in names:
            lines += ["", f"![{title}]({name}.png)"]
    return "\n".join([*lines, ""])


def paired_table(rows: list[dict], run_dir: Path, k: int) -> list[str]:
    """M_t - M_0 per metric, paired over the same problems, with the standard error over independent units."""
    evals = [r for r in rows if r["eval"]]
    if len(evals) < 2:
        return []
    first = per_problem(run_dir / f"iter_{evals[0]['iteration']}" / "eval.json")
    if not first:
        return []
    names = {metric: f"maj@{k}" if metric == "maj" else metric for metric in PER_PROBLEM_METRICS}
    table, clustered = [], False
    for r in evals[1:]:
        later = per_problem(run_dir / f"iter_{r['iteration']}" / "eval.json")
        cells = []
        for metric in names:
            d, se, n = paired_by_problem(later, first, metric)
            if n < 2:
                cells.append("-")
                continue
            clustered |= len({later[i]["cluster"] for i in later}) < len(later)
            z = f", {d / se:+.1f} SE" if se else ""
            cells.append(f"{format_mean_se(d * 100, se * 100, digits=1, signed=True)} (n {n}{z})")
        table.append(f"| M_{r['iteration']} - M_{evals[0]['iteration']} | " + " | ".join(cells) + " |")
    units = "clusters of problems (cluster_by)" if clustered else "problems"
    return [
        "",
        f"Paired differences against M_{evals[0]['iteration']} in points, over the same problems (± one "
        f"standard error over {units}; n problems):",
        "",
        "| models | " + " | ".join(names.values()) + " |",
        "|---|" + "---|" * len(names),
        *table,
    ]


def answers_table(rows: list[dict], k: int) -> list[str]:
    """No-answer rates, a task's partial credit (zebra: cell accuracy) and its subsets (zebra: easy / hard puzzles),
    the columns the evals have."""
    evals = [r for r in rows if r["eval"]]
    columns = [
        (f"{name}", key)
        for name, key in (("no answer (greedy)", "greedy_no_answer"), ("no answer (sampled)", "no_answer"))
    ]
    credit = sorted(
        {
            key[len("greedy_") :]
            for r in evals
            for key in r["eval"]
            if key.startswith("greedy_") and key != "greedy_no_answer"
        }
    )
    for name in credit:
        columns += [
            (f"greedy {name}", f"greedy_{name}"),
            (f"{name}@1", f"{name}@1"),
            (f"maj@{k} {name}", f"maj@{k}_{name}"),
        ]
    columns += [(f"maj@{k} by cell", f"maj@{k}_by_cell")]
    subsets = sorted({name for r in evals for name in r["eval"].get("subsets", {})})
    columns = [(n, key) for n, key in columns if any(key in r["eval"] for r in evals)]
    if not columns and not subsets:
        return []
    header = [n for n, _ in columns] + [f"{name} {m}" for name in subsets for m in ("greedy", f"maj@{k}")]
    lines = [
        "",
        "Answers: how often none could be read"
        + (", partial credit" if credit else "")
        + (", and per subset (" + ", ".join(subsets) + ")" if subsets else "")
        + ".",
        "",
        "| t | " + " | ".join(header) + " |",
        "|---" * (len(header) + 1) + "|",
    ]
    for r in evals:
        ev = r["eval"]
        cells = [format_metric(ev, key) for _, key in columns]
        cells += [format_metric(ev.get("subsets", {}).get(name), m) for name in subsets for m in ("greedy", f"maj@{k}")]
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
        out.append(
            f"| {r['iteration']} | {counts.get('select_metric', '-')} | {cells} | {counts.get('selected_epoch')} |"
        )
    if not out:
        return []
    return [
        "",
        "Checkpoint selection on the dev split: the dev metric after each epoch of the step that trained "
        "M_t+1, and the epoch kept as M_t+1.",
        "",
        "| t | metric | dev by epoch | kept |",
        "|---|---|---|---|",
        *out,
    ]


def votes_table(rows: list[dict]) -> list[str]:
    """The vote labels of M_t's samples (majority vs gold, where the problems have gold: reported, never trained on),
    the pairs kept and why the other prompts gave none."""
    out = []
    for r in rows:
        label, pairs = (r["label"] or {}).get("counts", {}), (r["pairs"] or {}).get("counts", {})
        if "majority_accuracy" not in label and "skipped" not in pairs:
            continue
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(pairs.get("skipped", {}).items())) or "-"
        out.append(
            f"| {r['iteration']} | {label.get('majority_accuracy', '-')} | {label.get('prompts', '-')} | "
            f"{pairs.get('pairs', '-')} | {pairs.get('chosen_accuracy', '-')} | {skipped} |"
        )
    if not out:
        return []
    return [
        "",
        "Vote labels of M_t's samples on the training problems: the majority answer's accuracy against gold "
        "(gold is only reported), pairs kept, how often the chosen answer is right, and why the other prompts "
        "gave no pair.",
        "",
        "| t | majority accuracy | prompts | pairs | chosen accuracy | no pair: why |",
        "|---|---|---|---|---|---|",
        *out,
    ]


STAGE_FILES = (
    ("generate", "generated_problems.jsonl"),
    ("sample", "samples.jsonl"),
    ("label", "labels.jsonl"),
    ("pairs", "pairs.jsonl"),
    ("train", "model"),
    ("eval", "eval.json"),
    ("guard eval", "guard_eval.json"),
)


def stages_table(run_dir: Path, rows: list[dict]) -> list[str]:
    """Each iteration's stage seconds and peak resident memory (from the manifests), and their sum."""
    out = []
    for r in rows:
        cells, total = [], 0.0
        for _, name in STAGE_FILES:
            manifest = _load(run_dir / f"iter_{r['iteration']}" / f"{name}.manifest.json")
            if not manifest:
                cells.append("-")
                continue
            total += float(manifest.get("seconds", 0))
            peak = manifest.get("peak_rss_mb")
            cells.append(f"{manifest.get('seconds', 0):.0f}" + (f" ({peak / 1024:.1f})" if peak else ""))
        out.append(f"| iter_{r['iteration']} | " + " | ".join(cells) + f" | {total:.0f} |")
    return [
        "",
        "Stage seconds per iteration (peak resident memory in GB, where recorded); iteration t's eval is "
        "M_t's, its other stages make M_t+1.",
        "",
        "| folder | " + " | ".join(stage for stage, _ in STAGE_FILES) + " | total s |",
        "|---|" + "---|" * (len(STAGE_FILES) + 1),
        *out,
    ]


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
        out.append(
            f"| {r['iteration']} | {per_prompt} | {sample.get('stopped_early', '-')} | {changed} | "
            f"{gen.get('candidates', '-')} | {gen.get('kept', '-')} | {dropped} | "
            f"{pairs.get('generated_pairs', '-')} |"
        )
    if not out:
        return []
    return [
        "",
        "Sampling of M_t's training data: adaptive samples per prompt (and how often the audited full-k "
        "majority differs), and the new problems M_t wrote (kept after near-duplicate removal; a pair "
        "only when their vote reached tau).",
        "",
        "| t | samples / prompt | stopped early | majority changed (audit) | new problems | kept | dropped | "
        "gave a pair |",
        "|---|---|---|---|---|---|---|---|",
        *out,
    ]


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
        unparsed = (
            "-"
            if label.get("judge_unparsed_share") is None
            else f"{label['judge_unparsed_share']:.1%} of {label['judge_outputs']}"
        )
        agreement = "-" if pairs.get("agreement_rate") is None else f"{pairs['agreement_rate']:.1%}"
        out.append(
            f"| {r['iteration']} | {pairs.get('labeler', label.get('labeler', '-'))} | "
            f"{pairs.get('pairs', '-')} of {pairs.get('prompts', '-')} | {c} | {agreement} | "
            f"{label.get('mean_judge_score', '-')} | {unparsed} | {pairs.get('mean_reward_gap', '-')} | "
            f"{pairs.get('chosen_accuracy', '-')} |"
        )
    if not out:
        return []
    caption = (
        "Internal-reward labels of M_t's samples: pairs kept (of prompts), CREAM consistency "
        "C = (Kendall tau + 1) / 2 over the kept pairs (mean ± standard deviation), SCIR agreement rate "
        "(pairs on which every reward agrees / candidate pairs), the judge's mean score and its unreadable "
        "outputs (excluded), the pairs' mean reward gap, and how often the chosen answer is correct "
        "(gold, for reporting only)."
    )
    header = (
        "| t | labeler | pairs kept | consistency C | agreement | mean judge score | judge unparsed | "
        "reward gap | chosen acc. |"
    )
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
            ax.errorbar(
                [t for t, _ in pts],
                [m["mean"] for _, m in pts],
                yerr=[m["stderr"] for _, m in pts],
                marker="o",
                capsize=3,
                label=key,
            )
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
            ax.plot(
                [(b["lo"] + b["hi"]) / 2 for b in bins],
                [b["accuracy"] for b in bins],
                marker="o",
                label=f"M_{r['iteration']} (D={r['eval'].get('somers_d')})",
            )
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1)
    ax.set(
        xlabel="vote share of the answer",
        ylabel="accuracy",
        title="vote share vs accuracy",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
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
            (line,) = ax.plot(
                [e["epoch"] for e in curve],
                [e["value"] for e in curve],
                marker="o",
                label=f"M_{r['iteration']} -> M_{r['iteration'] + 1}",
            )
            kept = next(e for e in curve if e["epoch"] == counts["selected_epoch"])
            ax.plot([kept["epoch"]], [kept["value"]], marker="*", markersize=16, color=line.get_color())
        ax.set(
            xlabel="epoch",
            ylabel=f"dev {selected[0]['train']['counts'].get('select_metric', '')}",
            title="checkpoint selection on dev (star: kept)",
        )
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
