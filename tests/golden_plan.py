"""The loop plan and every stage's manifest config, for every shipped recipe, as plain data (the golden test).

For a recipe this computes, without running any model:
- the bash loop (`recipes/iterate.sh --dry_run`): each stage command in order, with the dict that the
  stage hashes into its manifest (the config that decides whether a finished stage is skipped);
- the Slurm chain (`scpo slurm submit --dry_run`): each job's name, sbatch options, dependencies and
  the stage commands it runs, with their configs.

A stage's config is caught where every stage checks its manifest (`scpo.manifest.is_done`), so the
capture does not depend on how the stage computes it. Paths of the run are normalised to <tmp> and
<root>, and the models are small fake folders with fixed timestamps (their fingerprints are stable).

    python tests/golden_plan.py --update     # rewrite tests/golden/plans.json after a deliberate change
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "plans.json"
FIXED_MTIME = 1_700_000_000


class Captured(Exception):
    def __init__(self, config):
        self.config = config


def recipes() -> list[Path]:
    """The loop recipes (not accelerate configs, not `scpo compare` files and the eval recipes they name)."""
    return sorted(
        p
        for p in (ROOT / "recipes").rglob("*.yaml")
        if "accelerate" not in p.parts and not any(part.startswith("compare") for part in p.parts)
    )


def fake_model(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 2048}))
    os.utime(path / "config.json", (FIXED_MTIME, FIXED_MTIME))


def inputs(tmp: Path, recipe: Path) -> list[str]:
    """Overrides that point a recipe at files that exist here (its data and models may not)."""
    import yaml

    recipe_settings = yaml.safe_load(recipe.read_text()) or {}
    problems = tmp / "problems.jsonl"
    rows = [{"id": f"p{i}", "prompt": f"{i} + 1?", "gold": str(i + 1)} for i in range(4)]
    if recipe_settings.get("task") == "zebra":  # a fixed 2x2 puzzle: the zebra task checks gold against the puzzle
        rows = [
            {
                "id": f"p{i}",
                "prompt": "There are 2 houses.\n - Each person has a unique name: `A`, `B`\n"
                " - Each person has a unique favorite drink: `tea`, `milk`\n\n## Clues:\n1. A is in the first house.",
                "gold": {"House 1": {"Name": "A", "Drink": "tea"}, "House 2": {"Name": "B", "Drink": "milk"}},
            }
            for i in range(4)
        ]
    problems.write_text("".join(json.dumps(row) + "\n" for row in rows))
    fake_model(tmp / "m0")
    generator = ["--generation_model", str(tmp / "m0")] if recipe_settings.get("generation_model") else []
    return [
        "--output_root",
        str(tmp / "runs"),
        "--model",
        str(tmp / "m0"),
        "--problems_file",
        str(problems),
        "--eval_file",
        str(problems),
        *generator,
    ]


def prepare_run_dir(tmp: Path, run_name: str, iterations: int) -> None:
    """The models each iteration (and an SFT first step) trains, and the new problems file sampling reads (faked)."""
    fake_model(tmp / "runs" / run_name / "sft" / "model")
    for t in range(iterations + 1):
        fake_model(tmp / "runs" / run_name / f"iter_{t}" / "model")
        generated = tmp / "runs" / run_name / f"iter_{t}" / "generated_problems.jsonl"
        generated.write_text("")
        os.utime(generated, (FIXED_MTIME, FIXED_MTIME))


def normalise(value, tmp: Path):
    text = json.dumps(value, sort_keys=True, default=str)
    text = text.replace(str(tmp), "<tmp>").replace(str(ROOT), "<root>")
    return json.loads(text)


def stage_config(stage: str, argv: list[str]):
    """The config `scpo <stage> argv` would hash into its manifest (None for stages without one)."""
    from scpo import cli
    from scpo.core import devices, manifest

    module = __import__(cli.COMMANDS[stage][0], fromlist=["main"])
    original = manifest.is_done

    def catch(output, config, inputs, normalize=None):
        raise Captured(config)

    patched = [
        m
        for name, m in list(sys.modules.items())
        if name.split(".")[0] in ("scpo", "data_tools") and getattr(m, "is_done", None) is original
    ]
    for m in patched:
        m.is_done = catch
    manifest.is_done = catch
    native, devices.cpu_has_bf16 = devices.cpu_has_bf16, lambda: True  # `bf16: true` as on a CPU with native bf16
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            module.main(list(argv))
    except Captured as c:
        return c.config
    finally:
        for m in patched:
            m.is_done = original
        manifest.is_done = original
        devices.cpu_has_bf16 = native
    return None


def bash_plan(recipe: Path, overrides: list[str]) -> list[list[str]]:
    """The stage commands of `recipes/iterate.sh`, from its dry run."""
    proc = subprocess.run(
        ["bash", str(ROOT / "recipes" / "iterate.sh"), str(recipe), *overrides, "--dry_run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    commands = []
    for line in proc.stdout.splitlines():
        words = shlex.split(line)
        if words[:2] == ["scpo", "chain"]:  # stages run in one process: each is compared as its own step
            part = []
            for word in words[2:] + ["--then"]:
                if word == "--then":
                    commands.append(part)
                    part = []
                else:
                    part.append(word)
        elif words[:1] == ["scpo"]:
            commands.append(words[1:])
    return commands


SCRIPT_STAGES = {
    "eval": ["eval"],
    "generate": ["generate-problems"],
    "label": ["sample", "label", "pairs"],
    "report": ["report"],
    "train": ["train"],
    "sample": ["sample"],
}


def slurm_plan(recipe: Path, overrides: list[str]) -> list[dict]:
    """The jobs of `scpo slurm submit --dry_run`: name, sbatch options, dependencies, stage commands."""
    from scpo import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main(["slurm", "submit", "--config", str(recipe), *overrides, "--dry_run"])
    jobs = []
    for name, command in re.findall(r'^(\w+)="\$\((.*)\)"$', out.getvalue(), re.MULTILINE):
        words = shlex.split(command)
        at = next(i for i, w in enumerate(words) if w.startswith("slurm/"))
        options, script, args = words[2:at], words[at], words[at + 1 :]
        kind = Path(script).stem
        if kind == "stages" or (kind == "train" and args[:1] in (["train"], ["sft"])):  # SCRIPT STAGE[,...] args
            stages, args = args[0].split(","), args[1:]
        else:
            stages = SCRIPT_STAGES[kind]
        deps = [o for o in options if o.startswith("--dependency=")]
        jobs.append(
            {
                "job": name,
                "options": [o for o in options if not o.startswith("--dependency=")],
                "dependency": deps[0] if deps else None,
                "script": "train" if kind == "train" else "sample" if kind == "sample" else "stages",
                "stages": stages,
                "args": args,
            }
        )
    return jobs


def plans(recipe: Path) -> dict:
    """Everything the golden test compares for one recipe."""
    from scpo.core.settings import parse_settings
    from scpo.loop.plan import LoopSettings

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        overrides = inputs(tmp, recipe)
        loop = parse_settings(LoopSettings, ["--config", str(recipe), *overrides])
        prepare_run_dir(tmp, loop.run_name, loop.iterations)
        configs: dict[str, object] = {}

        def config_of(stage: str, argv: list[str]):
            key = json.dumps([stage, argv])
            if key not in configs:
                configs[key] = stage_config(stage, argv) if stage != "report" else None
            return configs[key]

        bash = [{"stage": c[0], "args": c[1:], "config": config_of(c[0], c[1:])} for c in bash_plan(recipe, overrides)]
        slurm = slurm_plan(recipe, overrides)
        for job in slurm:
            job["configs"] = [config_of(stage, job["args"]) for stage in job["stages"]]
        return normalise({"bash": bash, "slurm": slurm}, tmp)


def grpo_config(recipe: Path) -> dict:
    """`scpo grpo` runs on its own (not in the loop): its config."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        overrides = inputs(tmp, recipe)
        return normalise(stage_config("grpo", ["--config", str(recipe), *overrides]), tmp)


def all_plans() -> dict:
    import yaml

    out = {}
    for recipe in recipes():
        name = str(recipe.relative_to(ROOT))
        if "reward_funcs" in (yaml.safe_load(recipe.read_text()) or {}):
            out[name] = {"grpo": grpo_config(recipe)}
        else:
            out[name] = plans(recipe)
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    result = all_plans()
    if "--update" in sys.argv:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN} ({len(result)} recipes)")
    else:
        print(json.dumps(result, indent=1, sort_keys=True))
