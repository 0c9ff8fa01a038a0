"""Slurm jobs: a real single-node Slurm on localhost runs the project's sbatch scripts on a tiny model
(array sampling, training, chained by dependencies; a requeue and a failure in the middle). What needs
several GPUs or nodes is checked by the exact commands the scripts print for a 2-node x 8-GPU job."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import PARITY_TASK, ROOT, read_jsonl

VENV_BIN = Path(sys.executable).parent


def shell_scripts() -> list[Path]:
    """Every shell script in the repository: *.sh, *.sbatch and files with a bash shebang."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out = []
    for name in files:
        path = ROOT / name
        if not path.is_file():
            continue
        if path.suffix in (".sh", ".sbatch") or path.read_bytes()[:40].startswith(
            (b"#!/usr/bin/env bash", b"#!/bin/bash")
        ):
            out.append(path)
    return out


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_passes_on_every_shell_script():
    scripts = shell_scripts()
    assert ROOT / "slurm" / "train.sbatch" in scripts and ROOT / ".ci" / "run" in scripts
    proc = subprocess.run(
        ["shellcheck", "-x", *map(str, scripts)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def fake_allocation(tmp_path: Path, **env: str) -> dict[str, str]:
    """The environment of a 2-node x 8-GPU Slurm job, which this machine cannot have. Only `scontrol show
    hostnames` is stood in for (it needs a cluster's configuration); the scripts print instead of running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "scontrol").write_text(
        '#!/bin/sh\n[ "$1 $2 $3" = "show hostnames gpu-[001-002]" ] || exit 1\necho gpu-001\necho gpu-002\n'
    )
    (bin_dir / "scontrol").chmod(0o755)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SCPO_PRINT": "1",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "gpu-[001-002]",
        "SLURM_GPUS_ON_NODE": "8",
        "SCPO_SRUN_ARGS": "--container-image=scpo.sqsh --container-mounts=/data",
        **env,
    }


def job_prints(script: str, args: list[str], env: dict[str, str]) -> list[list[str]]:
    proc = subprocess.run(
        ["bash", f"slurm/{script}.sbatch", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return [shlex.split(line) for line in proc.stdout.splitlines()]


@pytest.mark.slow  # a subprocess
def test_train_job_on_two_nodes_of_eight_gpus(tmp_path, monkeypatch):
    """What cannot run here: the srun line of a 2 x 8-GPU training job, and the accelerate launch on node 1."""
    from scpo.core.settings import parse_settings
    from scpo.stages import train
    from scpo.training import launch

    recipe = tmp_path / "r.yaml"
    recipe.write_text("accelerate_config: zero3\nnodes: 2\n")
    args = [
        "--config",
        str(recipe),
        "--iteration",
        "0",
        "--iter_dir",
        "runs/x/iter_0",
        "--model",
        "m",
        "--output_dir",
        "runs/x/iter_0/model",
        "--main_process_port",
        "29500",
    ]
    (cmd,) = job_prints("train", ["train", *args], fake_allocation(tmp_path, TORCH_NCCL_ASYNC_ERROR_HANDLING="3"))
    per_node = 'exec "$@" --machine_rank "$SLURM_NODEID"'
    stage = [
        "python",
        "-m",
        "scpo.cli",
        "train",
        *args,
        "--num_machines",
        "2",
        "--num_processes",
        "16",
        "--main_process_ip",
        "gpu-001",
    ]
    assert cmd == [
        "env",
        "TORCH_NCCL_ASYNC_ERROR_HANDLING=3",  # a user's NCCL setting wins over our default (1)
        "srun",
        "--kill-on-bad-exit=1",
        "--nodes=2",
        "--ntasks-per-node=1",
        "--container-image=scpo.sqsh",
        "--container-mounts=/data",
        "bash",
        "-c",
        per_node,
        "scpo-train",
        *stage,
    ]
    (cmd,) = job_prints("train", ["train", *args], fake_allocation(tmp_path / "default"))
    assert cmd[1] == "TORCH_NCCL_ASYNC_ERROR_HANDLING=1"

    # What srun runs on the node with SLURM_NODEID=1: that node's `scpo train`, with machine rank 1 ...
    node = subprocess.run(
        ["bash", "-c", per_node, "scpo-train", "printf", "%s\\n", *stage[4:]],
        env={**os.environ, "SLURM_NODEID": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    node_argv = node.stdout.splitlines()
    assert node_argv == [*stage[4:], "--machine_rank", "1"]
    # ... which relaunches itself under accelerate with DeepSpeed ZeRO-3 for 16 processes on 2 machines.
    monkeypatch.setattr(launch, "has_gpu", lambda: True)
    settings = parse_settings(train.TrainSettings, node_argv)
    assert launch.launch_command(settings, node_argv) == [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(launch.ACCELERATE_DIR / "zero3.yaml"),
        "--num_processes",
        "16",
        "--num_machines",
        "2",
        "--machine_rank",
        "1",
        "--main_process_ip",
        "gpu-001",
        "--main_process_port",
        "29500",
        "-m",
        "scpo.cli",
        "train",
        *node_argv,
    ]


@pytest.mark.slow  # a subprocess
def test_sample_label_and_eval_jobs_print_their_steps(tmp_path):
    env = fake_allocation(tmp_path, SLURM_ARRAY_TASK_ID="5")
    srun = ["srun", "--ntasks=1", "--container-image=scpo.sqsh", "--container-mounts=/data"]
    args = ["--config", "r.yaml", "--iter_dir", "runs/x/iter_0", "--model", "m"]
    assert job_prints("sample", args, env) == [
        [*srun, "python", "-m", "scpo.cli", "sample", *args, "--shard_index", "5"]
    ]
    assert job_prints("stages", ["sample,label,pairs", *args], env) == [
        [*srun, "python", "-m", "scpo.cli", stage, *args] for stage in ("sample", "label", "pairs")
    ]  # merge, label, pairs
    assert job_prints("stages", ["eval", *args], env) == [[*srun, "python", "-m", "scpo.cli", "eval", *args]]


def iterate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**(env or os.environ), "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        ["bash", "slurm/iterate.sh", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow  # a subprocess
def test_dry_run_prints_the_chain_of_jobs(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "run_name: big\nmodel: /models/llama\niterations: 2\nnum_shards: 8\naccelerate_config: zero3\n"
        "partition: gpu\naccount: lab\nnodes: 2\narray_parallelism: 4\n"
    )
    proc = iterate(
        str(recipe),
        "--partition",
        "h100",
        "--time_train",
        "1-00:00:00",
        "--sbatch_args=--exclusive --constraint=ib",
        "--setup",
        "module load cuda; source /env/bin/activate",
        "--dry_run",
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "export SCPO_SETUP='module load cuda; source /env/bin/activate' SCPO_SRUN_ARGS=''" in out
    lines = {m[1]: shlex.split(m[2]) for m in re.finditer(r'^(\w+)="\$\((.*)\)"$', out, re.MULTILINE)}
    assert list(lines) == [
        "eval_0",
        "sample_0",
        "label_0",
        "train_0",
        "eval_1",
        "sample_1",
        "label_1",
        "train_1",
        "eval_2",
        "report",
    ]
    common = ["--open-mode=append", f"--chdir={ROOT}", "--export=ALL"]
    run_args = [
        "--config",
        str(recipe),
        "--partition",
        "h100",
        "--time_train",
        "1-00:00:00",
        "--sbatch_args=--exclusive --constraint=ib",
        "--setup",
        "module load cuda; source /env/bin/activate",
    ]
    slurm_dir = ROOT / "runs" / "big" / "slurm"
    assert lines["train_1"] == [
        "sbatch",
        "--parsable",
        "--job-name=big-train-1",
        f"--output={slurm_dir}/%x-%j.out",
        *common,
        "--time=1-00:00:00",
        "--nodes=2",
        "--ntasks-per-node=1",
        "--requeue",
        "--kill-on-invalid-dep=yes",
        "--partition=h100",
        "--account=lab",
        "--gres=gpu:8",
        "--exclusive",
        "--constraint=ib",
        "--dependency=afterok:$label_1",
        "slurm/train.sbatch",
        "train",
        *run_args,
        "--iteration",
        "1",
        "--iter_dir",
        "runs/big/iter_1",
        "--model",
        "runs/big/iter_0/model",
        "--output_dir",
        "runs/big/iter_1/model",
        "--main_process_port",
        "29500",
    ]
    assert lines["sample_1"][2:4] == ["--job-name=big-sample-1", f"--output={slurm_dir}/%x-%A_%a.out"]
    assert "--array=0-7%4" in lines["sample_1"] and "--gres=gpu:1" in lines["sample_1"]
    assert "--dependency=afterok:$train_0" in lines["sample_1"] and "--time=04:00:00" in lines["sample_1"]
    assert "--dependency=afterok:$sample_1" in lines["label_1"] and not any("gres" in a for a in lines["label_1"])
    assert "--dependency=afterok:$eval_0:$eval_1:$eval_2" in lines["report"]
    assert not any(a.startswith("--dependency") for a in lines["eval_0"] + lines["sample_0"])
    assert not any("--dry_run" in line for line in lines.values())  # jobs do not inherit the request to print
    assert lines["label_1"][lines["label_1"].index("slurm/stages.sbatch") + 1] == "sample,label,pairs"
    for script in ("job.sh", "sample.sbatch", "stages.sbatch", "train.sbatch"):
        assert f"# ---- slurm/{script} ----\n" + (ROOT / "slurm" / script).read_text().rstrip() in out


@pytest.mark.slow  # a subprocess
def test_new_problems_are_written_before_the_sampling_array(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("run_name: gen\nmodel: /models/llama\niterations: 1\nnum_shards: 4\nnew_problems: 100\n")
    proc = iterate(str(recipe), "--dry_run")
    assert proc.returncode == 0, proc.stderr
    lines = {m[1]: shlex.split(m[2]) for m in re.finditer(r'^(\w+)="\$\((.*)\)"$', proc.stdout, re.MULTILINE)}
    assert list(lines) == ["eval_0", "generate_0", "sample_0", "label_0", "train_0", "eval_1", "report"]
    assert "generate-problems" in lines["generate_0"] and "--gres=gpu:1" in lines["generate_0"]
    assert "--dependency=afterok:$generate_0" in lines["sample_0"]


@pytest.mark.slow  # a subprocess
def test_bad_slurm_settings_are_clear_errors(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("run_name: x\nk: 4\n")
    proc = iterate(str(recipe), "--nodes", "2", "--dry_run")
    assert proc.returncode == 1 and "nodes=2" in proc.stderr and "accelerate_config" in proc.stderr
    proc = iterate(str(recipe), "--array_parallelism", "0", "--dry_run")
    assert proc.returncode == 1 and "array_parallelism=0" in proc.stderr
    proc = iterate(str(recipe), "--array_paralelism", "2", "--dry_run")
    assert proc.returncode == 1 and "did you mean 'array_parallelism'" in proc.stderr


# ---- on a real Slurm ----


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    from slurm_cluster import Cluster, missing_binaries

    missing = missing_binaries()
    if missing and not os.environ.get("CI"):
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing; apt-get install slurm-wlm munge)")
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("starting slurmd and munged needs root")
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()


def tiny_recipe(tmp_path: Path, tiny_model: str) -> Path:
    (tmp_path / "loop_task.py").write_text(PARITY_TASK)  # a random model writes no numbers to vote on
    path = tmp_path / "tiny.yaml"
    path.write_text(f"""
run_name: tiny
output_root: {tmp_path / "runs"}
model: {tiny_model}
task: loop_task:WordParity
problems_file: {ROOT / "recipes/cpu_demo/train.jsonl"}
eval_file: {ROOT / "recipes/cpu_demo/eval.jsonl"}
max_problems: 8            # 4 per shard: a task generates long enough to be requeued mid-shard
max_eval_problems: 3
iterations: 1
backend: hf
k: 4
temperature: 1.0
max_tokens: 32             # about 3 s of generation per prompt: the window for the requeue
num_shards: 2
save_token_ids: true
tau: 0.01
top_tie: random
max_steps: 1
per_device_train_batch_size: 2
learning_rate: 1.0e-4
report_to: none
save_strategy: "no"
accelerate_config: cpu      # the multi-node path (srun, machine rank, main node) with one CPU process
eval_k: 2
# slurm: CPU jobs; one sampling task at a time, so one can be requeued while the others wait or are done
gpus_per_node: 0
array_parallelism: 1
time_sample: "00:10:00"
setup: "export PATH={VENV_BIN}:$PATH PYTHONPATH={ROOT}:{tmp_path} OMP_NUM_THREADS=1"  # 1 CPU per job
""")
    return path


def submit(slurm, recipe: Path) -> dict[str, str]:
    proc = iterate(str(recipe), env=slurm.env)
    assert proc.returncode == 0, proc.stderr
    return dict(re.findall(r"^\[slurm\] (\S+): (\d+)$", proc.stdout, re.MULTILINE))


def wait_for(what: str, check, slurm, timeout: float = 300):
    deadline = time.time() + timeout
    while not (result := check()):
        if time.time() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}; {slurm.log_tail()}")
        time.sleep(0.1)
    return result


@pytest.mark.slow
def test_run_on_slurm_survives_a_requeue_and_a_failure(tmp_path, tiny_model, slurm):
    recipe = tiny_recipe(tmp_path, tiny_model)
    run = tmp_path / "runs" / "tiny"
    ids = submit(slurm, recipe)
    assert list(ids) == ["eval-0", "sample-0", "label-0", "train-0", "eval-1", "report"]

    # 1. Preemption: requeue the sampling array while its second task is generating, the first one done by then
    # (Slurm starts the array's tasks in either order).
    sample = ids["sample-0"]
    shards = run / "iter_0" / "samples.jsonl.shards"

    def task_log(i: int) -> Path:
        return run / "slurm" / f"tiny-sample-0-{sample}_{i}.out"

    def second_task_generating():
        done = [i for i in (0, 1) if list(shards.glob(f"*/0000{i}-of-00002.jsonl"))]
        if len(done) != 1:
            return None
        other = 1 - done[0]
        started = task_log(other).exists() and f"shard {other + 1}/2: sampling" in task_log(other).read_text()
        return (done[0], other) if started else None

    first, second = wait_for("the second sampling task to generate", second_task_generating, slurm)
    (shard0,) = shards.glob(f"*/0000{first}-of-00002.jsonl")
    shard0_mtime = shard0.stat().st_mtime_ns
    slurm.slurm("scontrol", "requeue", sample)
    assert not shard0.with_name(f"0000{second}-of-00002.jsonl").exists()  # killed mid-shard

    # 2. A failure: training is cancelled mid-run; the jobs after it are cancelled (afterok never satisfied).
    train_log = run / "slurm" / f"tiny-train-0-{ids['train-0']}.out"
    wait_for("training to start", lambda: train_log.exists() and "accelerate" in train_log.read_text(), slurm)
    slurm.slurm("scancel", ids["train-0"])
    states = slurm.wait(ids.values(), timeout=120)
    assert {states[ids[n]] for n in ("train-0", "eval-1", "report")} == {"CANCELLED"}, states
    assert {s for i, s in states.items() if i.startswith(sample)} == {"COMPLETED"}
    assert states[ids["label-0"]] == states[ids["eval-0"]] == "COMPLETED"
    log = task_log(second).read_text()
    assert "DUE TO JOB REQUEUE" in log and "(restart 1)" in log
    first_log = task_log(first).read_text()
    assert "(restart 1)" in first_log and f"shard {first + 1}/2 is done" in first_log  # the whole array was requeued
    assert shard0.stat().st_mtime_ns == shard0_mtime  # a finished shard is not redone
    samples = run / "iter_0" / "samples.jsonl"
    done_before = {p.name: p.stat().st_mtime_ns for p in [samples, *shard0.parent.glob("*.jsonl")]}

    # 3. The same command again: finished stages are skipped, the run completes.
    again = submit(slurm, recipe)
    states = slurm.wait(again.values(), timeout=300)
    assert set(states.values()) == {"COMPLETED"}, f"{states}\n{slurm.log_tail()}"
    label_log = (run / "slurm" / f"tiny-label-0-{again['label-0']}.out").read_text()
    assert label_log.count("is up to date") == 3  # merge, label, pairs: nothing redone
    assert {p.name: p.stat().st_mtime_ns for p in [samples, *shard0.parent.glob("*.jsonl")]} == done_before

    rows = read_jsonl(samples)
    problems = read_jsonl(ROOT / "recipes" / "cpu_demo" / "train.jsonl")[:8]
    keys = [(str(r["id"]), r["sample_index"]) for r in rows]
    assert len(keys) == len(set(keys)) == 32  # nothing duplicated ...
    assert set(keys) == {(str(p["id"]), j) for p in problems for j in range(4)}  # ... nothing lost
    train_out = (run / "slurm" / f"tiny-train-0-{again['train-0']}.out").read_text()
    assert re.search(
        r"accelerate.commands.launch --config_file \S+/cpu.yaml --num_processes 1 --num_machines 1 "
        r"--machine_rank 0 --main_process_ip \S+ --main_process_port 29500",
        train_out,
    ), train_out
    assert (run / "iter_0" / "model" / "model.safetensors").exists()
    assert (run / "iter_1" / "eval.json").exists() and (run / "report.md").exists()
