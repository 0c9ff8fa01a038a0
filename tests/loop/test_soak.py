"""Random-kill soak: the whole loop on the tiny model, and the sample stage on vLLM, killed with SIGKILL at random
moments and started again until they finish; the files a user reads equal an uninterrupted run's byte for byte, no
sample row is lost or duplicated, and no temp file of a killed write is left behind.

In the suite: SCPO_SOAK_KILLS (default 3) kills of the loop and 2 of the vLLM stage; `-m soak` runs longer soaks
(SCPO_SOAK_KILLS=20). vLLM on CPU is deterministic here because its engine core runs in the stage's process
(scpo/sampling/vllm_engine.py): with the core in its own process, batches and with them the sampled text differ
from run to run.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import read_jsonl, write_jsonl
from test_loop import digests, iterate, recipe, run_to_completion

KILLS = int(os.environ.get("SCPO_SOAK_KILLS", "3"))


def steps_started(log: Path) -> list[str]:
    return re.findall(r"^\[loop\] scpo (\S+)", log.read_text(), re.MULTILINE)


def kill_in_steps(command, timeline: list[float], kills: int, rng: random.Random, log: Path) -> Counter:
    """Starts `command()` and SIGKILLs its process group `kills` times, each at a moment drawn uniformly over the
    uninterrupted run's `timeline`: the attempt runs until it reaches that moment's step (steps done before are
    skipped quickly) and is killed as far into the step as the moment was. Kills land in each stage in proportion
    to its running time, whatever an attempt's start-up costs. Counts the stage each kill landed in."""
    landed: Counter = Counter()
    for _ in range(kills):
        moment = rng.uniform(0, timeline[-1])
        step = max(i for i, t in enumerate(timeline[:-1]) if t <= moment) if moment >= timeline[0] else -1
        into = moment - (timeline[step] if step >= 0 else 0)
        with open(log, "w") as out:
            proc = command(stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            while proc.poll() is None and len(steps_started(log)) <= step:
                time.sleep(0.02)
            time.sleep(into)
            finished = proc.poll() is not None
            if not finished:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        stages = steps_started(log)
        landed["finished before the kill" if finished else (stages[-1] if stages else "start")] += 1
    return landed


def kill_at_random(command, duration: float, kills: int, rng: random.Random, log: Path) -> None:
    """Starts `command()` (one stage) and SIGKILLs its process group after a random part of `duration`, `kills`
    times."""
    for _ in range(kills):
        with open(log, "w") as out:
            proc = command(stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            time.sleep(rng.uniform(0.5, duration))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def leftover_temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")]


@pytest.mark.slow
def test_loop_killed_at_random_moments_ends_with_the_uninterrupted_files(tmp_path, tiny_model, clean_loop_run):
    clean_run, timeline = clean_loop_run
    soak_dir = tmp_path / "soak"
    soak_dir.mkdir()
    soak_recipe = recipe(soak_dir, tiny_model)
    landed = kill_in_steps(
        lambda **popen: iterate(soak_recipe, **popen), timeline, KILLS, random.Random(0), tmp_path / "killed.log"
    )
    run_to_completion(soak_recipe)
    assert landed["finished before the kill"] < KILLS, landed  # a soak that killed nothing proves nothing
    clean, soaked = digests(clean_run), digests(soak_dir / "runs" / "tiny")
    assert clean.keys() == soaked.keys()
    assert {k for k in clean if clean[k] != soaked[k]} == set(), landed
    samples = read_jsonl(soak_dir / "runs" / "tiny" / "iter_0" / "samples.jsonl")
    keys = Counter((r["id"], r["sample_index"]) for r in samples)
    assert set(keys.values()) == {1} and len(keys) == 6 * 6  # nothing duplicated, nothing lost
    assert leftover_temp_files(soak_dir / "runs") == []
    print(f"\nsoak: {KILLS} kills, landed in {dict(landed)}; 0 differences")


@pytest.mark.slow
def test_vllm_sample_stage_killed_at_random_moments_ends_with_the_uninterrupted_rows(tmp_path, tiny_model):
    problems = [{"id": f"p{i}", "prompt": f"What is {i} + {i}?"} for i in range(24)]
    write_jsonl(tmp_path / "problems.jsonl", problems)

    def sample(samples_file: Path, **popen):
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scpo.cli",
                "sample",
                "--model",
                tiny_model,
                "--task",
                "numeric",
                "--problems_file",
                str(tmp_path / "problems.jsonl"),
                "--samples_file",
                str(samples_file),
                "--k",
                "4",
                "--max_tokens",
                "8",
                "--num_shards",
                "4",
                "--dtype",
                "float32",
                "--enforce_eager",
                "--save_token_ids",
            ],
            text=True,
            **popen,
        )

    started = time.time()
    clean = sample(tmp_path / "clean.jsonl", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = clean.communicate()
    duration = time.time() - started
    assert clean.returncode == 0, out
    # Quiet by default: no teardown traceback from the in-process engine, none of the third-party notices.
    for noise in ("Traceback", "Exception ignored", "Triton", "pin_memory", "FutureWarning"):
        assert noise not in out, out
    kills = int(os.environ.get("SCPO_SOAK_VLLM_KILLS", "2"))
    kill_at_random(
        lambda **popen: sample(tmp_path / "soak.jsonl", **popen),
        duration,
        kills,
        random.Random(1),
        tmp_path / "killed.log",
    )
    assert sample(tmp_path / "soak.jsonl").wait() == 0
    assert (tmp_path / "soak.jsonl").read_bytes() == (tmp_path / "clean.jsonl").read_bytes()
    assert leftover_temp_files(tmp_path) == []


@pytest.mark.slow
@pytest.mark.soak
def test_longer_soak_of_the_loop(tmp_path, tiny_model, clean_loop_run, monkeypatch):
    """`pytest -m soak` (with SCPO_SOAK_KILLS=20): the same check with many more kills."""
    monkeypatch.setattr(sys.modules[__name__], "KILLS", int(os.environ.get("SCPO_SOAK_KILLS", "20")))
    test_loop_killed_at_random_moments_ends_with_the_uninterrupted_files(tmp_path, tiny_model, clean_loop_run)
