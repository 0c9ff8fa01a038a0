"""`scpo compare`: several methods on the same problems, the same budget of training rollouts and the same
held-out eval; one Markdown table and one plot.

A comparison file names the methods, each a recipe plus the settings it changes:

    run_name: compare_cpu_demo
    eval_recipe: recipes/cpu_demo.yaml    # M_0 and the held-out eval every model gets
    budget_rollouts: 1280                 # training rollouts each method samples
    methods:
      scpo: {recipe: recipes/cpu_demo.yaml, iterations: 1}
      ttrl: {trainer: grpo, recipe: recipes/grpo_cpu_demo.yaml, reward_funcs: [majority]}

An offline method (`trainer: loop`, the default) runs its loop plan (scpo/loop/plan.py) in
`<output_root>/<run_name>/<method>/`; its planned rollouts are iterations x problems x k plus every extra
completion it would sample, at most (`offline_rollouts`), and its measured rollouts every completion it sampled (`measured`: ScPO's extra samples at T=1.2, a vote teacher's samples,
new-problem candidates and judge outputs too). An online method (`trainer: grpo`) runs `scpo grpo` there with
`max_steps` = budget / rollouts per step (per_device_train_batch_size x gradient_accumulation_steps x
processes; every rollout counts, the vote-only ones too), then `scpo eval` of its model with the eval
recipe's settings. The plan refuses, before anything runs, an offline method whose planned rollouts
are not the budget or whose held-out eval differs from the eval recipe's: the table compares like with
like. Measured and reported per method: rollouts and completion tokens sampled (from the stages'
manifests and the GRPO log), optimizer steps, wall time.

Shared work: M_0's eval is made once (`<run>/M_0/eval.json`) and offered to every offline method's
iteration 0, and M_0's samples are offered from one offline method to the next; a copy is kept only when
the stage's own manifest says it fits (same config and inputs), else the stage redoes it, so sharing never
changes a result.

Resume: `compare.json` records each finished method with the hash of its specification; a re-run skips
those, and an unfinished method's stages skip what their manifests say is done.

The table's noise: each metric's standard error over problems (scpo eval; over clusters with `cluster_by`), and
for `paired_metric` (pass@1 by default; greedy for GSM8K, the papers' headline) the paired difference to M_0 and
between the two best methods (per problem, the same problems, standard errors over clusters), which says whether
a win is beyond the noise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scpo.core import trl_keys
from scpo.core.blocks import LaunchBlock, ModelBlock
from scpo.core.errors import STOP_EXIT, LoopStop, ScpoError
from scpo.core.io import atomic_path, config_digest, file_digest, write_json
from scpo.core.settings import Block, parse_settings, peek, peek_setting
from scpo.labelers import LABELERS
from scpo.loop.plan import LoopSettings, chained, plan, teacher_samples_at
from scpo.metrics import PER_PROBLEM_METRICS as PAIRED_METRICS
from scpo.metrics import format_mean_se, format_metric, paired_by_problem
from scpo.reporting.per_problem import per_problem, sidecar

TRAINERS = ("loop", "grpo")
EVAL_KEYS_LEFT_OUT = ("iter_dir", "eval_output", "overwrite", "iteration", "model", "verbose")


@dataclass
class CompareSettings(Block):
    """scpo compare: methods on the same problems, rollout budget and held-out eval; a table and a plot."""

    run_name: str = "compare"  # the comparison's folder: <output_root>/<run_name>/<method>/
    output_root: str = "runs"  # where it goes
    eval_recipe: str | None = None  # the recipe whose model is M_0 and whose eval settings every model gets (required)
    budget_rollouts: int | None = None  # training rollouts per method; None: the first offline method's plan
    methods: dict = field(default_factory=dict)  # name -> {recipe: FILE, trainer: loop | grpo, <setting>: value ...}
    paired_metric: str = "pass@1"  # the paired difference column and the best-method lines: pass@1 | greedy | maj
    dry_run: bool = False  # print each method's commands instead of running them
    iteration: int = 0  # (unused; every settings class has it)

    def __post_init__(self):
        super().__post_init__()
        if not self.methods:
            raise ScpoError("setting methods: name at least one method (name: {recipe: FILE, ...})")
        for name, spec in self.methods.items():
            where = f"setting methods.{name}"
            if not isinstance(spec, dict) or not spec.get("recipe"):
                raise ScpoError(f"{where}: needs a recipe (methods: {{{name}: {{recipe: recipes/....yaml}}}})")
            if not Path(str(spec["recipe"])).exists():
                raise ScpoError(f"{where}.recipe={spec['recipe']!r}: no such file")
            if spec.get("trainer", "loop") not in TRAINERS:
                raise ScpoError(f"{where}.trainer={spec['trainer']!r}: expected one of {TRAINERS}")
            if name == "M_0" or "/" in name:
                raise ScpoError(f"{where}: {name!r} cannot name a method (M_0 is the initial model's row)")
        if not self.run_name or not self.run_name.strip() or "/" in self.run_name:
            raise ScpoError(f"setting run_name={self.run_name!r}: the comparison's folder name, non-empty, no '/'")
        if not self.eval_recipe:
            raise ScpoError(
                "setting eval_recipe: name the recipe whose model is M_0 and whose held-out eval every "
                "method gets (e.g. eval_recipe: recipes/compare_cpu_demo/eval.yaml)"
            )
        if not Path(self.eval_recipe).exists():
            raise ScpoError(f"setting eval_recipe={self.eval_recipe!r}: no such file")
        if self.paired_metric not in PAIRED_METRICS:
            raise ScpoError(f"setting paired_metric={self.paired_metric!r}: one of {', '.join(PAIRED_METRICS)}")
        if self.budget_rollouts is not None and self.budget_rollouts <= 0:
            raise ScpoError(f"setting budget_rollouts={self.budget_rollouts}: must be > 0")


SETTINGS = CompareSettings


def cli_value(value) -> str:
    """A recipe value as a command-line value (lists comma-joined, mappings as JSON, which YAML reads)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def overrides(spec: dict) -> list[str]:
    out = []
    for key, value in spec.items():
        if key not in ("recipe", "trainer"):
            out += [f"--{key}", cli_value(value)]
    return out


@dataclass
class Method:
    name: str
    trainer: str
    folder: Path
    argv: list[str]  # the recipe and overrides (and where the method works)
    rollouts: int  # planned training rollouts
    commands: list[list[str]]  # `scpo <stage> ...` argument lists, in order
    spec_hash: str = ""
    final_eval: Path | None = None
    rollouts_per_step: int = 0


def count_rows(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def eval_config(argv: list[str]) -> dict:
    from scpo.stages.eval import EvalSettings

    return parse_settings(EvalSettings, argv).hashed(leave_out=EVAL_KEYS_LEFT_OUT)


def offline_rollouts(argv: list[str]) -> int:
    """Every completion the plan samples to make the model, at most. Per iteration t: the k votes of each problem
    (new problems counted as if all were kept), ScPO's `resample_n` extras (as if every prompt were unanimous),
    one completion per new-problem candidate, a vote teacher's k samples per problem (frozen: from t = 1, or t = 0
    with a teacher_model; ema: from t = 1) and a judge labeler's `judge_samples` outputs per response."""
    from scpo.labelers.judge import JudgeSettings
    from scpo.stages.label import LabelSettings
    from scpo.stages.sample import SampleSettings

    loop = parse_settings(LoopSettings, argv)
    problems = str(peek(argv, "problems_file"))
    if not Path(problems).exists():
        raise ScpoError(f"problems_file={problems!r}: no such file")
    labeler = LABELERS.get(peek_setting(argv, "labeler", LabelSettings))
    total = 0
    for t in range(loop.iterations):
        at = [*argv, "--iteration", str(t)]
        n = count_rows(problems)
        limit = peek_setting(at, "max_problems", SampleSettings)
        n = min(n, limit) if limit is not None else n
        new = peek_setting(at, "new_problems", SampleSettings)
        k = peek_setting(at, "k", SampleSettings)
        total += (n + new) * (k + peek_setting(at, "resample_n", SampleSettings)) + new
        if teacher_samples_at(loop, t):
            total += (n + new) * k
        if "judge" in getattr(labeler, "signals", ()):
            total += (n + new) * k * peek_setting(at, "judge_samples", JudgeSettings)
    return total


def grpo_rollouts_per_step(argv: list[str]) -> int:
    defaults = trl_keys.GRPO_DEFAULTS  # TRL's own, kept as data (no TRL import) and checked against TRL by a test
    per_device = int(peek(argv, "per_device_train_batch_size", defaults["per_device_train_batch_size"]))
    accumulation = int(peek(argv, "gradient_accumulation_steps", defaults["gradient_accumulation_steps"]))
    processes = peek_setting(argv, "num_processes", LaunchBlock) or 1  # unset: one process
    return per_device * accumulation * processes


DATA_SETTINGS = ("problems_file", "eval_file", "dev_file", "guard_file", "sft_file")


def depends_on(argv: list[str], recipe: str, eval_recipe: str) -> dict[str, str]:
    """The content of every file a method's result depends on: its recipe, the eval recipe and the data files they
    name. A method's result is reused only while all of them are unchanged (an edited recipe reruns it)."""
    files = {"recipe": recipe, "eval_recipe": eval_recipe}
    for key in DATA_SETTINGS:
        for source, args in (("", argv), ("eval_recipe.", ["--config", eval_recipe])):
            value = peek(args, key)
            if value not in (None, "null", "None", ""):
                files[source + key] = str(value)
    return {key: file_digest(path) if Path(path).is_file() else "missing" for key, path in files.items()}


def build(s: CompareSettings) -> tuple[Path, list[str], list[Method]]:
    """Every method's commands, after the equal-budget and same-eval checks (nothing has run yet)."""
    root = Path(s.output_root) / s.run_name
    base = ["--config", s.eval_recipe]
    base_eval = eval_config(base)
    base_model = peek_setting(base, "model", ModelBlock)
    m0_eval = ["eval", *base, "--iter_dir", str(root / "M_0"), "--iteration", "0"]
    methods: list[Method] = []
    budget = s.budget_rollouts
    for name, spec in s.methods.items():
        trainer = spec.get("trainer", "loop")
        argv = ["--config", str(spec["recipe"]), *overrides(spec)]
        model = peek_setting(argv, "model", ModelBlock)
        if model != base_model:
            raise ScpoError(
                f"method {name}: model {model!r} is not the eval recipe's M_0 {base_model!r}: "
                "every method starts from the same model"
            )
        folder = root / name
        spec_hash = config_digest(
            {
                "spec": spec,
                "eval": base_eval,
                "budget": budget,
                "files": depends_on(argv, str(spec["recipe"]), s.eval_recipe),
            }
        )
        if trainer == "loop":
            argv += ["--output_root", str(root), "--run_name", name]
            mine = eval_config(argv)
            if mine != base_eval:
                diff = {
                    k: (mine.get(k), base_eval.get(k))
                    for k in set(mine) | set(base_eval)
                    if mine.get(k) != base_eval.get(k)
                }
                raise ScpoError(
                    f"method {name}: its held-out eval differs from eval_recipe {s.eval_recipe} "
                    f"(setting: (method, eval recipe)) {diff}; set the same values"
                )
            rollouts = offline_rollouts(argv)
            if budget is None:
                budget = rollouts
            elif rollouts != budget:
                raise ScpoError(
                    f"method {name}: plans {rollouts} training rollouts (iterations x problems x k, and "
                    f"every extra completion: resampled, teacher, new-problem and judge samples), "
                    f"budget_rollouts is {budget}; change its k, max_problems or iterations"
                )
            loop, steps = plan(argv)
            commands = [c for c in chained(steps) if c[0] != "report"]  # as recipes/iterate.sh runs them
            commands.append(["report", str(folder)])
            final = folder / f"iter_{loop.iterations}" / "eval.json"
            methods.append(Method(name, trainer, folder, argv, rollouts, commands, spec_hash, final))
        else:
            methods.append(
                Method(
                    name,
                    trainer,
                    folder,
                    argv,
                    0,
                    [],
                    spec_hash,
                    folder / "iter_1" / "eval.json",
                    grpo_rollouts_per_step(argv),
                )
            )
    if budget is None:
        raise ScpoError("no offline method sets the budget: set budget_rollouts")
    for m in methods:
        if m.trainer == "grpo":
            spec = s.methods[m.name]  # the recipe's own max_steps gives way to the budget unless the method sets one
            if budget % m.rollouts_per_step:
                raise ScpoError(
                    f"method {m.name}: budget_rollouts {budget} is not a whole number of GRPO steps of "
                    f"{m.rollouts_per_step} rollouts (per_device_train_batch_size x "
                    "gradient_accumulation_steps x processes); change either so that they divide"
                )
            steps = int(spec["max_steps"]) if "max_steps" in spec else budget // m.rollouts_per_step
            m.rollouts = int(steps) * m.rollouts_per_step
            if m.rollouts != budget:
                raise ScpoError(
                    f"method {m.name}: max_steps {steps} x {m.rollouts_per_step} rollouts per step = "
                    f"{m.rollouts}, budget_rollouts is {budget}; leave max_steps out (compare sets it)"
                )
            model_dir = m.folder / "model"
            m.commands = [
                ["grpo", *m.argv, "--max_steps", str(steps), "--output_dir", str(model_dir)],
                ["eval", *base, "--model", str(model_dir), "--iter_dir", str(m.folder / "iter_1"), "--iteration", "1"],
            ]
            m.spec_hash = config_digest({"hash": m.spec_hash, "max_steps": steps, "budget": budget})
    return root, m0_eval, methods


def offer(source: Path, target: Path) -> None:
    """Copies a finished stage output and its manifest (and eval's samples) where a stage would write them, unless
    something is already there; the stage keeps the copy only when its manifest fits."""
    manifest = source.with_name(source.name + ".manifest.json")
    if not source.exists() or not manifest.exists() or target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    extra = [sidecar(source, "samples"), sidecar(source, "per_problem")] if source.suffix == ".json" else []
    for path in [*extra, source, manifest]:  # the manifest last: a half-made copy has none and is redone
        if path.exists():
            shutil.copy2(path, target.with_name(path.name))


def run_command(args: list[str]) -> None:
    script = Path(sys.executable).with_name("scpo")  # the console script beside this interpreter, as iterate.sh runs it
    command = [str(script), *args] if script.exists() else [sys.executable, "-m", "scpo.cli", *args]
    print(f"[compare] scpo {' '.join(args)}", file=sys.stderr, flush=True)
    status = subprocess.run(command).returncode
    if status == STOP_EXIT:  # the collapse guard stopped this method's loop: its best model stands, the report follows
        raise LoopStop("stopped by the collapse guard")
    if status != 0:
        raise ScpoError(
            f"`scpo {args[0]}` failed (exit {status}); fix it and run scpo compare again: finished "
            "stages and methods are kept"
        )


def measured(m: Method) -> dict:
    """Rollouts and completion tokens sampled, optimizer steps: from the method's manifests or GRPO log."""
    out = {"rollouts": 0, "tokens": 0, "train_steps": 0}
    if m.trainer == "loop":
        # every completion the method sampled to make its model: its own samples (ScPO's resampled extras
        # included), a vote teacher's samples, new-problem candidates and judge outputs; evals are not counted
        for name, key in (
            ("samples.jsonl", "completions"),
            ("teacher_samples.jsonl", "completions"),
            ("generated_problems.jsonl", "candidates"),
            ("labels.jsonl", "judge_outputs"),
        ):
            for manifest in sorted(m.folder.glob(f"iter_*/{name}.manifest.json")):
                counts = json.loads(manifest.read_text()).get("counts", {})
                out["rollouts"] += int(counts.get(key, 0))
                out["tokens"] += int(counts.get("output_tokens", 0))
        for manifest in sorted(m.folder.glob("iter_*/model.manifest.json")):
            out["train_steps"] += int(json.loads(manifest.read_text()).get("counts", {}).get("global_step", 0))
        return out
    log = m.folder / "model" / "grpo_log.jsonl"
    steps = {}
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if "completions/mean_length" in entry:
                steps[entry["step"]] = entry["completions/mean_length"]
    out["train_steps"] = max(steps, default=0)
    out["rollouts"] = out["train_steps"] * m.rollouts_per_step
    out["tokens"] = round(sum(steps.values()) * m.rollouts_per_step)  # mean length per step x rollouts
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


def table(
    results: dict,
    k: int,
    m0: dict,
    m0_problems: dict,
    root: Path | None = None,
    gold: set[str] | None = None,
    paired_metric: str = "pass@1",
) -> tuple[str, list[str]]:
    """`m0_problems`: M_0's per-problem results (scpo/reporting/per_problem.py); `root`: the comparison's folder,
    for each method's model-making seconds (from its manifests); `gold`: the methods that train on gold answers
    (the best label-free method gets its own line); `paired_metric`: the metric of the paired columns and lines."""
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
    passes = {}
    for name, r in results.items():
        ev = json.loads(Path(r["eval"]).read_text())
        passes[name] = per_problem(Path(r["eval"]))
        d, se, _ = paired_by_problem(passes[name], m0_problems, paired_metric)
        made = f"{model_seconds(root / name, r['trainer']):.0f}" if root is not None else "-"
        lines.append(
            f"| {name} | {r['trainer']} | {format_metric(ev, 'greedy')} | {format_metric(ev, 'pass@1')} | "
            f"{format_metric(ev, f'maj@{k}')} | {format_mean_se(d, se, signed=True)} | {r['rollouts']} | "
            f"{r['tokens']} | {r['train_steps']} | {made} | {r['wall_s']:.0f} |"
        )

    def mean(name):
        values = [r[paired_metric] for r in passes[name].values() if paired_metric in r]
        return sum(values) / max(len(values), 1)

    ranked = sorted(passes, key=lambda n: -mean(n))
    notes = [best_line(f"Best {shown}", ranked, passes, paired_metric)]
    label_free = [n for n in ranked if n not in (gold or ())]
    if gold and len(label_free) < len(ranked):
        notes.append(best_line("Best without gold labels", label_free, passes, paired_metric))
    return "\n".join(lines), [n for n in notes if n]


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


def uses_gold(argv: list[str]) -> bool:
    """Whether a method (its recipe and overrides) trains on gold answers: IRPO's upper bound, semi-supervised
    mixes, the gold reward."""
    from scpo.stages.grpo import GrpoSettings

    rewards = peek_setting(argv, "reward_funcs", GrpoSettings)  # the whole list, not one per iteration
    return peek_setting(argv, "mode", LABELERS.get("votes").settings) != "unsupervised" or "gold" in rewards


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
    ax.set_title("Methods on equal training-rollout budget (error bars: 1 SE over problems)")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def run(s: CompareSettings) -> dict:
    from scpo.core.lock import run_lock

    root, m0_eval, methods = build(s)
    from scpo.stages.eval import EvalSettings

    k = peek_setting(["--config", s.eval_recipe], "eval_k", EvalSettings)
    if s.dry_run:
        for command in [m0_eval] + [c for m in methods for c in m.commands]:
            print("scpo " + " ".join(command))
        return {}
    with run_lock(root, "scpo compare"):
        state_path = root / "compare.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        done = state.get("methods", {})
        run_command(m0_eval)
        m0_path = root / "M_0" / "eval.json"
        previous_samples = None
        for m in methods:
            if m.trainer == "loop":
                offer(m0_path, m.folder / "iter_0" / "eval.json")
                if previous_samples is not None:
                    offer(previous_samples, m.folder / "iter_0" / "samples.jsonl")
                previous_samples = m.folder / "iter_0" / "samples.jsonl"
            record = done.get(m.name)
            if record and record.get("spec_hash") == m.spec_hash and Path(record["eval"]).exists():
                print(f"[compare] {m.name}: done ({record['wall_s']:.0f} s)", file=sys.stderr)
                continue
            elapsed = state.setdefault("elapsed_s", {})
            for command in m.commands:
                started = time.time()
                try:
                    run_command(command)
                except LoopStop:  # the guard kept the best model and its eval; the report is the last command
                    run_command(m.commands[-1])
                    break
                finally:  # a killed or failed method's time so far counts when it resumes
                    elapsed[m.name] = round(elapsed.get(m.name, 0) + time.time() - started, 1)
                    write_json(state_path, {**state, "methods": done})
            final = m.final_eval
            if (m.folder / "guard.json").exists():  # the method's own rule chose its model, on its dev file: the
                guard = json.loads((m.folder / "guard.json").read_text())  # held-out eval of that iteration
                final = m.folder / f"iter_{guard['best_iteration']}" / "eval.json"
            done[m.name] = {
                "trainer": m.trainer,
                "spec_hash": m.spec_hash,
                "eval": str(final),
                "wall_s": elapsed[m.name],
                "planned_rollouts": m.rollouts,
                **measured(m),
            }
            elapsed.pop(m.name)
            write_json(state_path, {**state, "settings": dataclasses.asdict(s), "methods": done})
        results = {m.name: done[m.name] for m in methods}
        m0 = json.loads(m0_path.read_text())
        gold = {m.name for m in methods if uses_gold(m.argv)}
        text, notes = table(results, k, m0, per_problem(m0_path), root, gold, s.paired_metric)
        md = "\n".join(
            [
                f"# {s.run_name}: methods on {results[methods[0].name]['planned_rollouts']} training rollouts each",
                "",
                f"Held-out eval: {s.eval_recipe} (k {k}); ± is 1 SE over problems.",
                "model (s): the stage seconds that made the model (sampling, labels, pairs, training; "
                "shared samples of M_0 counted for each method that used them; evals left out). "
                "wall (s): this run's time for the method, its held-out evals included and shared work "
                "counted once.",
                "",
                text,
                "",
                *notes,
                "",
            ]
        )
        with atomic_path(root / "compare.md") as tmp:
            tmp.write_text(md)
        plot(results, k, m0, root / "compare.png")
        print(md)
        return results


def main(argv: list[str]) -> dict:
    """`scpo compare --config recipes/compare_cpu_demo.yaml [--setting value ...]`."""
    return run(parse_settings(CompareSettings, argv))
