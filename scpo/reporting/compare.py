"""The report of `scpo compare` (scpo/loop/compare.py): what each method cost, measured from its stage files, and
compare.md (one table, the best-method lines) and compare.png (held-out metrics per method, 1 SE error bars).

Each metric's "mean ± se" and the paired differences (per problem, standard errors over clusters) are
scpo/metrics.py's; each problem's results are read by scpo/reporting/per_problem.py, and an online method's
log by scpo/reporting/grpo.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from scpo.core.io import atomic_path
from scpo.metrics import format_mean_se, format_metric, mean_and_stderr, paired_by_problem
from scpo.reporting.grpo import LOG_NAME, steps
from scpo.reporting.per_problem import per_problem

# every completion a loop method sampled to make its model (evals are not counted): its own samples (ScPO's
# resampled extras included), a vote teacher's samples, new-problem candidates and judge outputs
SAMPLED_FILES = (
    ("samples.jsonl", "completions"),
    ("teacher_samples.jsonl", "completions"),
    ("generated_problems.jsonl", "candidates"),
    ("labels.jsonl", "judge_outputs"),
)


def report(
    root: Path,
    run_name: str,
    eval_recipe: str,
    k: int,
    results: dict,
    m0_path: Path,
    gold: set[str],
    paired_metric: str,
    pending: dict[str, str] | None = None,
) -> str:
    """Writes compare.md and compare.png in the comparison's folder `root`; the Markdown. `results`: each finished
    method's record in compare.json, in the comparison's order; `gold`: the methods that train on gold answers;
    `pending`: the methods not finished yet ({name: trainer}), listed as "to come" in a partial report (a
    comparison of several hours shows each result as it lands)."""
    m0 = json.loads(m0_path.read_text())
    m0_problems = per_problem(m0_path)
    passes = {name: per_problem(Path(r["eval"])) for name, r in results.items()}
    text, notes = table(results, k, m0, m0_problems, passes, root, gold, paired_metric)
    evals = {"M_0": m0, **{name: json.loads(Path(r["eval"]).read_text()) for name, r in results.items()}}
    notes += [line for line in [precision_line(evals)] if line]
    for name, trainer in (pending or {}).items():
        text += f"\n| {name} | {trainer} | to come |" + " - |" * 8
    partial = f" (partial: {', '.join(pending)} to come)" if pending else ""
    md = "\n".join(
        [
            f"# {run_name}{partial}: methods on {next(iter(results.values()))['planned_rollouts']} training "
            "rollouts each",
            "",
            f"Held-out eval: {eval_recipe} (k {k}); ± is 1 SE over {se_units(m0)}.",
            "model (s): the stage seconds that made the model (sampling, labels, pairs, training; "
            "shared samples of M_0 counted for each method that used them; evals left out). "
            "wall (s): this run's time for the method, its held-out evals included and shared work "
            "counted once.",
            "",
            text,
            "",
            *notes,
            "",
            *differences(passes, k, m0_problems),
        ]
    )
    with atomic_path(root / "compare.md") as tmp:
        tmp.write_text(md)
    plot(results, k, m0, root / "compare.png")
    return md


def table(
    results: dict,
    k: int,
    m0: dict,
    m0_problems: dict,
    passes: dict,
    root: Path | None = None,
    gold: set[str] | None = None,
    paired_metric: str = "pass@1",
) -> tuple[str, list[str]]:
    """`m0_problems`: M_0's per-problem results (scpo/reporting/per_problem.py); `passes`: each method's, by name;
    `root`: the comparison's folder, for each method's model-making seconds (from its manifests); `gold`: the
    methods that train on gold answers (the best label-free method gets its own line); `paired_metric`: the metric
    of the paired columns and lines."""
    shown = f"maj@{k}" if paired_metric == "maj" else paired_metric
    header = [
        "method",
        "trainer",
        "greedy",
        "pass@1",
        f"maj@{k}",
        f"Δ {shown} vs M_0 (paired)",
        "rollouts",
        "tokens sampled",
        "train steps",
        "model (s)",
        "wall (s)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append(
        "| M_0 | - | "
        + " | ".join([format_metric(m0, "greedy"), format_metric(m0, "pass@1"), format_metric(m0, f"maj@{k}")])
        + " | - | - | - | - | - | - |"
    )
    for name, r in results.items():
        ev = json.loads(Path(r["eval"]).read_text())
        d, se, _ = paired_by_problem(passes[name], m0_problems, paired_metric)
        made = f"{model_seconds(root / name, r['trainer']):.0f}" if root is not None else "-"
        lines.append(
            f"| {name} | {r['trainer']} | {format_metric(ev, 'greedy')} | {format_metric(ev, 'pass@1')} | "
            f"{format_metric(ev, f'maj@{k}')} | {format_mean_se(d, se, signed=True)} | {r['rollouts']} | "
            f"{r['tokens']} | {r['train_steps']} | {made} | {r['wall_s']:.0f} |"
        )

    def mean(name):
        return mean_and_stderr([r[paired_metric] for r in passes[name].values() if paired_metric in r])[0]

    ranked = sorted(passes, key=lambda n: -mean(n))
    notes = [best_line(f"Best {shown}", ranked, passes, paired_metric)]
    label_free = [n for n in ranked if n not in (gold or ())]
    if gold and ranked and ranked[0] in gold:  # the best trains on gold answers: the best without them too
        notes.append(best_line("Best without gold labels", label_free, passes, paired_metric))
    return "\n".join(lines), [n for n in notes if n]


def precision_line(evals: dict[str, dict]) -> str | None:
    """A warning when the held-out evals ran their engines at different precisions (eval.json's `engine_dtype`:
    `dtype: auto` is bf16 on a CPU with native bf16, float32 without): a greedy decode can change with the precision,
    so a paired difference across them is not training alone. Evals that predate the record are left out."""
    recorded = {name: ev["engine_dtype"] for name, ev in evals.items() if ev.get("engine_dtype")}
    if len(set(recorded.values())) < 2:
        return None
    runs = ", ".join(f"{name} {dtype}" for name, dtype in recorded.items())
    return (
        f"Warning: the held-out evals ran at different precisions ({runs}): greedy decodes differ between them, so "
        "their paired differences mix precision with training; evaluate every model with one `dtype`."
    )


def differences(passes: dict, k: int, m0_problems: dict) -> list[str]:
    """The table of each method minus M_0 on every per-problem metric, paired over the problems both measured (SE
    over clusters), and the method's greedy answer against M_0's maj@k: does training beat voting without it?"""
    lines = [
        "Paired differences to M_0 (± 1 SE over the problems both measured, or their clusters; the last column: the "
        f"method's greedy answer against M_0's majority of {k}, votes without training):",
        "",
        f"| method - M_0 | greedy | pass@1 | maj@{k} | greedy - M_0 maj@{k} |",
        "|---|---|---|---|---|",
    ]
    for name, mine in passes.items():
        cells = [paired_by_problem(mine, m0_problems, metric) for metric in ("greedy", "pass@1", "maj")]
        cells.append(paired_by_problem(mine, m0_problems, "greedy", before_metric="maj"))
        lines.append(f"| {name} | " + " | ".join(difference_cell(*cell) for cell in cells) + " |")
    return lines + [""]


def difference_cell(d: float, se: float, n: int) -> str:
    """'+0.030 ± 0.020 (1.5 SE, n 400)'; '-' where fewer than two problems pair."""
    if d != d:  # nan: the metric was not measured on both sides
        return "-"
    z = f"{d / se:.1f} SE" if se else "no spread"
    return f"{format_mean_se(d, se, signed=True)} ({z}, n {n})"


def best_line(title: str, ranked: list[str], passes: dict, paired_metric: str = "pass@1") -> str:
    """The first of `ranked` against the second, paired over problems (SE over clusters); empty with fewer than two."""
    if len(ranked) < 2:
        return ""
    d, se, _ = paired_by_problem(passes[ranked[0]], passes[ranked[1]], paired_metric)
    verdict = "beyond" if abs(d) > 2 * se else "within"
    z = f"{d / se:.1f} SE" if se else "no spread"
    return (
        f"{title}: **{ranked[0]}**, {d:+.3f} over {ranked[1]} (paired SE {se:.3f}: {z}, {verdict} 2 SE of the noise)."
    )


def se_units(ev: dict) -> str:
    """The independent units of an eval's standard errors: its problems, or its clusters (`cluster_by`)."""
    if ev.get("clusters"):
        return f"{ev['clusters']} clusters of problems (cluster_by; paired SEs too)"
    sampled = ev.get("problems_sampled")
    if sampled and sampled != ev.get("problems"):  # eval_k_problems: greedy on all, k samples on the first ones
        return f"{ev.get('problems')} problems for greedy, the first {sampled} for the sampled metrics"
    return f"{ev.get('problems', 'the')} problems"


def plot(results: dict, k: int, m0: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["M_0", *results]
    evals = [m0] + [json.loads(Path(r["eval"]).read_text()) for r in results.values()]
    keys = ["greedy", "pass@1", f"maj@{k}"]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 4))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        means = [e.get(key, {}).get("mean", 0) for e in evals]
        errors = [e.get(key, {}).get("stderr", 0) for e in evals]
        ax.bar([i + (j - 1) * width for i in range(len(names))], means, width, yerr=errors, capsize=3, label=key)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"Methods on equal training-rollout budget\nerror bars: 1 SE over {se_units(m0)}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def measured(folder: Path, trainer: str, rollouts_per_step: int = 0) -> dict:
    """Rollouts and completion tokens a method sampled and its optimizer steps: from its manifests (`trainer` loop)
    or its GRPO log (grpo: `rollouts_per_step` rollouts per logged training step)."""
    out = {"rollouts": 0, "tokens": 0, "train_steps": 0}
    if trainer == "loop":
        for name, key in SAMPLED_FILES:
            for manifest in sorted(folder.glob(f"iter_*/{name}.manifest.json")):
                counts = json.loads(manifest.read_text()).get("counts", {})
                out["rollouts"] += int(counts.get(key, 0))
                out["tokens"] += int(counts.get("output_tokens", 0))
        for manifest in sorted(folder.glob("iter_*/model.manifest.json")):
            out["train_steps"] += int(json.loads(manifest.read_text()).get("counts", {}).get("global_step", 0))
        return out
    model = folder / "model"
    lengths = {}  # step -> the mean completion length of its rollouts
    if (model / LOG_NAME).exists():
        lengths = {e["step"]: e["completions/mean_length"] for e in steps(model) if "completions/mean_length" in e}
    out["train_steps"] = max(lengths, default=0)
    out["rollouts"] = out["train_steps"] * rollouts_per_step
    out["tokens"] = round(sum(lengths.values()) * rollouts_per_step)  # mean length per step x rollouts
    return out


def model_seconds(folder: Path, trainer: str) -> float:
    """The stage seconds that made the method's model (sampling, labels, pairs, teachers, training; GRPO: its
    run), from the stages' manifests: shared work (M_0's samples copied from another method) counts for every
    method that uses it, and the held-out evals, the same for every method, do not count."""
    if trainer == "grpo":
        manifests = [folder / "model.manifest.json"]
    else:
        manifests = sorted(folder.glob("iter_*/*.manifest.json"))
    total = 0.0
    for path in manifests:
        if path.exists():
            manifest = json.loads(path.read_text())
            if manifest.get("stage") != "eval":
                total += float(manifest.get("seconds", 0))
    return total
