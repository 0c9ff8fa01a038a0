"""The loop end to end on a tiny model: every stage, killed in the middle, restarted, same files."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import PARITY_TASK, ROOT, write_jsonl

PROBLEMS = [{"id": f"p{i}", "prompt": f"What is {i} + 1?", "gold": str(i + 1)} for i in range(6)]


def recipe(tmp_path: Path, tiny_model: str) -> Path:
    (tmp_path / "loop_task.py").write_text(PARITY_TASK)  # a random model writes no numbers to vote on
    write_jsonl(tmp_path / "train.jsonl", PROBLEMS)
    write_jsonl(tmp_path / "eval.jsonl", PROBLEMS[:3])
    path = tmp_path / "tiny.yaml"
    path.write_text(f"""
run_name: tiny
output_root: {tmp_path / "runs"}
model: {tiny_model}
task: loop_task:WordParity
problems_file: {tmp_path / "train.jsonl"}
eval_file: {tmp_path / "eval.jsonl"}
iterations: 1
backend: hf
k: 6
temperature: 1.0
max_tokens: 16
num_shards: 3
save_token_ids: true
tau: 0.01            # a random model rarely agrees with itself; keep whatever pairs votes give
top_tie: random
max_steps: 2
per_device_train_batch_size: 2
learning_rate: 1.0e-4
report_to: none
save_strategy: "no"
eval_k: 2
""")
    return path


def iterate(recipe_path: Path, **popen) -> subprocess.Popen:
    env = {
        **os.environ,
        "SCPO_VENV": str(ROOT / ".venv"),
        "PYTHONPATH": f"{recipe_path.parent}:{os.environ.get('PYTHONPATH', '')}",
    }
    return subprocess.Popen(
        ["bash", str(ROOT / "recipes" / "iterate.sh"), str(recipe_path)], cwd=ROOT, env=env, text=True, **popen
    )


def run_to_completion(recipe_path: Path, timeout: float = 900) -> list[float]:
    """Runs the loop to the end; returns when each `[loop] scpo <stage>` step started, in seconds from the start,
    and when the run ended (the last entry)."""
    started = time.time()
    proc = iterate(recipe_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    steps, out = [], []
    for line in proc.stdout:
        out.append(line)
        if line.startswith("[loop] scpo "):
            steps.append(time.time() - started)
    assert proc.wait(timeout=timeout) == 0, "".join(out)[-4000:]
    return [*steps, time.time() - started]


def digests(run: Path) -> dict[str, str]:
    """Content hashes of every file a user reads. Manifests and shard counts carry timings, eval.json the paths
    of this run's folder and the run lock the pid of its last holder; those parts are left out."""
    out = {}
    for path in sorted(run.rglob("*")):
        name = path.name
        if (
            not path.is_file()
            or name == ".scpo.lock"
            or name.endswith((".manifest.json", ".counts.json", "report.md", ".png", "training_args.bin"))
            or "/runs/" in str(path.relative_to(run.parent))
        ):
            continue
        data = path.read_bytes()
        if name == "eval.json":
            data = json.dumps({k: v for k, v in json.loads(data).items() if k not in ("model", "eval_file")}).encode()
        out[str(path.relative_to(run))] = hashlib.sha256(data).hexdigest()
    return out


@pytest.mark.slow
def test_loop_killed_mid_stage_resumes_to_the_same_files(tmp_path, tiny_model, clean_loop_run):
    clean_run, _ = clean_loop_run
    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    assert (clean_run / "report.md").exists() and (clean_run / "iter_1" / "eval.json").exists()
    assert (clean_run / "iter_0" / "model" / "model.safetensors").exists()

    proc = iterate(
        recipe(killed_dir, tiny_model), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    shards = killed_dir / "runs" / "tiny" / "iter_0" / "samples.jsonl.shards"
    deadline = time.time() + 600
    while time.time() < deadline and not list(shards.glob("*/00000-of-00003.jsonl")):
        assert proc.poll() is None, "the loop ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # in the middle of the sample stage
    proc.wait()
    assert not (killed_dir / "runs" / "tiny" / "iter_0" / "samples.jsonl").exists()

    proc = iterate(recipe(killed_dir, tiny_model), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    assert "is up to date" in out  # the eval of M_0 finished before the kill and was not redone
    clean, resumed = digests(clean_run), digests(killed_dir / "runs" / "tiny")
    assert clean.keys() == resumed.keys()
    assert {k for k in clean if clean[k] != resumed[k]} == set()


def test_every_recipe_is_valid_for_every_stage():
    """Each shipped recipe resolves in every stage's parser (a misspelt key would fail here)."""
    import yaml

    from scpo.core.settings import parse_settings
    from scpo.loop import plan, slurm
    from scpo.stages import eval as eval_stage
    from scpo.stages import generate, grpo, label, pairs, sample, train

    recipes = sorted((ROOT / "recipes").rglob("*.yaml"))
    recipes = [r for r in recipes if "accelerate" not in r.parts]
    assert recipes
    for path in recipes:
        argv = ["--config", str(path)]
        if "methods" in yaml.safe_load(path.read_text()):  # an `scpo compare` file: each method's plan resolves
            from scpo.loop.compare import CompareSettings
            from scpo.loop.compare_plan import build

            build(parse_settings(CompareSettings, argv))
            continue
        for cls in (
            sample.SampleSettings,
            generate.GenerateSettings,
            label.settings_class(argv),
            pairs.settings_class(argv),
            eval_stage.EvalSettings,
            plan.LoopSettings,
            slurm.SlurmSettings,
        ):
            parse_settings(cls, argv)
        if "reward_funcs" in yaml.safe_load(path.read_text()):  # an online GRPO recipe (`scpo grpo`)
            grpo.parse(["--config", str(path)])
            continue
        settings, training_args, _ = train.parse(["--config", str(path)])
        assert settings.loss in ("scpo", "irpo", "dpo", "cream")
