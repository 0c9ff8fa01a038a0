"""`scpo report <grpo output_dir>`: per-step table (Markdown) and plot (PNG) of an `scpo grpo` run.

Reads only output_dir/grpo_log.jsonl (one line per logged step). Writes report.md and grpo_metrics.png:
majority ratio, label accuracy of the majority (gold is logged, never trained on), reward, distinct
answers, unparsed rollouts and greedy held-out accuracy, per step.
"""

from __future__ import annotations

import json
from pathlib import Path

from scpo.core.errors import ScpoError

LOG_NAME = "grpo_log.jsonl"  # written by `scpo grpo` (one line per logged step)
COLUMNS = [  # (log key, table header)
    ("reward", "reward"),
    ("ttrl/majority_ratio", "majority ratio"),
    ("ttrl/label_accuracy", "label acc."),
    ("ttrl/distinct_answers", "distinct answers"),
    ("ttrl/unparsed_rollouts", "unparsed"),
    ("kl", "KL"),
    ("heldout/accuracy", "held-out acc."),
]


def is_grpo_run(run_dir: Path) -> bool:
    return (Path(run_dir) / LOG_NAME).exists()


def steps(run_dir: Path) -> list[dict]:
    """One merged entry per step, in step order (a resumed run's later lines win)."""
    by_step: dict[int, dict] = {}
    for line in (Path(run_dir) / LOG_NAME).read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            by_step.setdefault(int(entry["step"]), {}).update(entry)
    return [
        by_step[s] for s in sorted(by_step) if any(key in by_step[s] for key, _ in COLUMNS + [("guard/best_step", "")])
    ]


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def markdown(rows: list[dict], run_dir: Path) -> str:
    lines = [
        f"# scpo grpo run {run_dir.name}",
        "",
        (
            "Online RL with majority-vote rewards (TTRL). Per logged step: the training batch's votes (majority "
            "ratio, label accuracy of the majority where gold exists, distinct answers, unparsed rollouts), the "
            "reward, and greedy accuracy on held-out problems where it was measured."
        ),
        "",
        "| step | " + " | ".join(header for _, header in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for r in rows:
        lines.append(f"| {r['step']} | " + " | ".join(_cell(r.get(key)) for key, _ in COLUMNS) + " |")
    held = [r for r in rows if "heldout/accuracy" in r]
    trained = [r for r in rows if "reward" in r]
    lines.append("")
    if len(held) >= 2:
        lines.append(
            f"Held-out greedy accuracy: step {held[0]['step']} {held[0]['heldout/accuracy']:.3f} -> "
            f"step {held[-1]['step']} {held[-1]['heldout/accuracy']:.3f}."
        )
    if len(trained) >= 2:
        window = max(1, len(trained) // 4)
        first, last = trained[:window], trained[-window:]
        for key, name in (
            ("ttrl/majority_ratio", "Majority ratio"),
            ("ttrl/label_accuracy", "Label accuracy"),
            ("reward", "Reward"),
        ):
            a, b = _mean(first, key), _mean(last, key)
            if a is not None and b is not None:
                lines.append(f"{name}: mean of the first {window} steps {a:.3f} -> last {window} steps {b:.3f}.")
    guard = next((r for r in reversed(rows) if r.get("guard/best_step") is not None), None)
    if guard is not None:
        stop = guard.get("guard/stopped_at")
        lines.append(
            f"Collapse guard: best at step {guard['guard/best_step']} ({guard['guard/best_value']:.3f}), "
            + (f"stopped at step {stop}; the best model is the run's model." if stop is not None else "not stopped.")
        )
    lines += ["", "![grpo metrics](grpo_metrics.png)", ""]
    return "\n".join(lines)


def plot(rows: list[dict], run_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, style in (
        ("ttrl/majority_ratio", "majority ratio", "-"),
        ("ttrl/label_accuracy", "label accuracy", "-"),
        ("reward", "reward", ":"),
        ("heldout/accuracy", "held-out greedy accuracy", "-o"),
    ):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax.plot([s for s, _ in pts], [v for _, v in pts], style, label=label, markersize=5)
    guard = next((r for r in reversed(rows) if r.get("guard/best_step") is not None), None)
    if guard is not None:
        ax.axvline(guard["guard/best_step"], color="green", ls="--", lw=1, label="guard: best model")
        if guard.get("guard/stopped_at") is not None:
            ax.axvline(guard["guard/stopped_at"], color="red", ls="--", lw=1, label="guard: stopped")
    ax.set(xlabel="training step", ylabel="rate", title=f"scpo grpo {run_dir.name}", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = run_dir / "grpo_metrics.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(run_dir: Path) -> str:
    from scpo.reporting.runs import write_report

    rows = steps(run_dir)
    if not rows:
        raise ScpoError(f"{run_dir / LOG_NAME}: no logged steps yet")
    plot(rows, run_dir)
    return write_report(run_dir, markdown(rows, run_dir))
