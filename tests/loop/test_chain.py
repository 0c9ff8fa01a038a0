"""`scpo chain`: stages in one process, one vLLM engine kept between them; what `scpo plan` chains."""

from __future__ import annotations

import json
import shlex

import pytest
from helpers import ROOT, read_jsonl, run_scpo, write_jsonl

from scpo.core.devices import cpu_has_bf16
from scpo.loop.plan import chained, plan

PROBLEMS = [{"id": f"q{i}", "prompt": f"What is {i} + {i + 2}?", "gold": str(2 * i + 2)} for i in range(6)]


@pytest.mark.slow
def test_eval_then_sample_start_one_engine_and_resume(tmp_path, tiny_model):
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    write_jsonl(tmp_path / "eval.jsonl", PROBLEMS[:4])
    common = [
        "--model",
        tiny_model,
        "--iter_dir",
        str(tmp_path),
        "--max_tokens",
        "12",
        "--dtype",
        "float32",
        "--enforce_eager",
        "--max_model_len",
        "256",
        "--task",
        "numeric",
    ]
    # eval_max_tokens is eval's own length (ZeroEval's 4096 for ZebraLogic); max_tokens stays the sampling one
    eval_args = [
        "eval",
        *common,
        "--eval_file",
        str(tmp_path / "eval.jsonl"),
        "--eval_k",
        "3",
        "--eval_max_tokens",
        "3",
    ]
    sample_args = ["sample", *common, "--k", "3", "--save_token_ids"]
    proc = run_scpo("chain", *eval_args, "--then", *sample_args)
    assert proc.stderr.count("engine started") == 1, proc.stderr[-3000:]
    assert proc.stderr.count("kept from the previous stage") == 1
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["problems"] == 4 and 0 < evaluated["output_tokens"] <= 4 * (1 + 3) * 3  # greedy + 3, 3 tokens
    # the precision the engine ran at: vLLM's auto casts the float32 model to bf16, float32 without native bf16
    assert evaluated["engine_dtype"] == ("bfloat16" if cpu_has_bf16() else "float32")
    rows = read_jsonl(tmp_path / "samples.jsonl")
    assert len(rows) == 6 * 3 and all(r["completion_token_ids"] for r in rows)
    assert max(len(r["completion_token_ids"]) for r in rows) > 3  # a random tiny model rarely stops by itself
    for output in ("eval.json", "samples.jsonl"):  # each stage wrote its own manifest
        assert (tmp_path / f"{output}.manifest.json").exists()

    # A kill after the eval: the chain again redoes only the sampling, in an engine of its own.
    (tmp_path / "samples.jsonl").unlink()
    (tmp_path / "samples.jsonl.manifest.json").unlink()
    for shard in (tmp_path / "samples.jsonl.shards").rglob("*.jsonl"):
        shard.unlink()
    proc = run_scpo("chain", *eval_args, "--then", *sample_args)
    assert "is up to date" in proc.stdout and proc.stderr.count("engine started") == 1
    again = read_jsonl(tmp_path / "samples.jsonl")
    assert [r["id"] for r in again] == [r["id"] for r in rows]
    # The same sampling alone in a fresh engine: the same manifest config, so either route resumes the other.
    alone = tmp_path / "alone"
    alone.mkdir()
    write_jsonl(alone / "problems.jsonl", PROBLEMS)
    run_scpo(*[alone if a == str(tmp_path) else a for a in map(str, sample_args)])
    config = lambda d: json.loads((d / "samples.jsonl.manifest.json").read_text())["config"]  # noqa: E731
    assert config(alone) == config(tmp_path)

    proc = run_scpo("chain", *eval_args, "--then", *sample_args)  # all done: no engine at all
    assert proc.stdout.count("is up to date") == 2 and "engine started" not in proc.stderr


@pytest.mark.slow  # scpo in a subprocess
def test_chain_stops_at_the_first_failing_stage_and_refuses_bad_parts(tmp_path):
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    missing = [
        "eval",
        "--model",
        str(tmp_path / "no_model"),
        "--iter_dir",
        str(tmp_path),
        "--eval_file",
        str(tmp_path / "problems.jsonl"),
    ]
    proc = run_scpo("chain", *missing, "--then", "report", str(tmp_path), check=False)
    assert proc.returncode == 1 and "scpo chain: error: part 1 (scpo eval): setting model: model path" in proc.stderr
    assert "[chain] scpo eval" not in proc.stderr  # found before any part ran
    (tmp_path / "broken.jsonl").write_text('{"id": "q0", "prompt": \n')  # only reading it finds this
    broken = ["eval", "--iter_dir", str(tmp_path), "--eval_file", str(tmp_path / "broken.jsonl")]
    proc = run_scpo("chain", *broken, "--then", "report", str(tmp_path), check=False)
    assert proc.returncode == 1 and "scpo eval: error" in proc.stderr and "[chain] scpo report" not in proc.stderr
    for parts, bad in (
        (["eval", "--then"], "part 2 is nothing"),
        (["nosuch", "--x"], "part 1 is 'nosuch'"),
        (["eval", "--then", "chain"], "part 2 is 'chain'"),
    ):
        proc = run_scpo("chain", *parts, check=False)
        assert proc.returncode == 2 and bad in proc.stderr, proc.stderr


def stages(line: list[str]) -> list[str]:
    if line[0] != "chain":
        return [line[0]]
    return [line[1]] + [line[i + 1] for i, word in enumerate(line) if word == "--then"]


def test_plan_chains_each_models_eval_and_sampling():
    _, steps = plan(["--config", str(ROOT / "recipes" / "cpu_demo.yaml")])
    lines = chained(steps)
    assert [stages(line) for line in lines] == [
        ["eval", "sample"],
        ["label"],
        ["pairs"],
        ["train"],
        ["eval", "sample"],
        ["label"],
        ["pairs"],
        ["train"],
        ["eval"],
        ["report"],
    ]
    flat = [part for line in lines for part in split(line)]
    assert flat == [[st.stage, *st.args] for st in steps]  # nothing lost, nothing reordered
    engines = sum(len([s for s in stages(line) if s in ("eval", "sample")]) > 0 for line in lines)
    assert engines == 3  # engine starts per run: 5 before (eval and sample each start one)

    _, steps = plan(
        [
            "--config",
            str(ROOT / "recipes" / "cpu_demo.yaml"),
            "--guard_metric",
            "pass@1",
            "--new_problems",
            "4",
            "--eval_file",
            str(ROOT / "recipes" / "cpu_demo_dev" / "eval.jsonl"),
            "--guard_file",
            str(ROOT / "recipes" / "cpu_demo_dev" / "dev.jsonl"),
        ]
    )
    # the held-out eval and the guard's eval on the dev file share M_t's engine
    assert [stages(line) for line in chained(steps)][:6] == [
        ["eval", "eval", "generate-problems", "sample"],
        ["label"],
        ["pairs"],
        ["train"],
        ["eval", "eval", "guard", "generate-problems", "sample"],
        ["label"],
    ]
    # The last eval's guard stays out of the chain: it uses no engine.
    assert [stages(line) for line in chained(steps)][-3:] == [["eval", "eval"], ["guard"], ["report"]]


def test_frozen_teacher_samples_break_the_chain():
    _, steps = plan(["--config", str(ROOT / "recipes" / "cpu_demo.yaml"), "--vote_teacher", "frozen"])
    lines = chained(steps)
    for line in lines:  # a chain holds one model
        parts = split(line)
        models = {[p[i + 1] for i, word in enumerate(p) if word == "--model"][-1] for p in parts if "--model" in p}
        assert len(models) <= 1, shlex.join(line)
    assert sum(line[0] == "chain" for line in lines) == 1  # M_0's eval and sampling; at t = 1 the teacher comes between


def split(line: list[str]) -> list[list[str]]:
    if line[0] != "chain":
        return [line]
    parts, part = [], []
    for word in line[1:] + ["--then"]:
        if word == "--then":
            parts.append(part)
            part = []
        else:
            part.append(word)
    return parts


def test_every_parts_inputs_are_checked_before_the_first_part_runs(tmp_path, capsys):
    """Issue 32 point 6: a typo in a later part of a chain failed only after the parts before it ran. Now the files
    each part reads and the models it loads are checked first (no model loaded), a file an earlier part writes
    counting as there; nothing runs when one is missing."""
    from scpo.cli import chain, check_chain_inputs

    samples = write_jsonl(
        tmp_path / "samples.jsonl",
        [
            {"id": "a", "prompt": "q", "completion": f"The answer is {n}.", "sample_index": i, "gold": "1"}
            for i, n in enumerate([1, 1, 2])
        ],
    )
    labels, pairs, model = tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl", tmp_path / "model"
    label = ["label", "--task", "numeric", "--samples_file", str(samples), "--labels_file", str(labels)]
    make_pairs = ["pairs", "--labels_file", str(labels), "--pairs_file", str(pairs)]
    train = ["train", "--model", str(tmp_path / "typo"), "--pairs_file", str(pairs), "--output_dir", str(model)]
    for argv, message in (
        (
            [*label, "--then", *make_pairs, "--then", *train],
            f"part 3 (scpo train): setting model: model path '{tmp_path / 'typo'}' does not exist",
        ),
        (
            [*label, "--then", "pairs", "--labels_file", str(tmp_path / "lables.jsonl")],
            f"part 2 (scpo pairs): setting labels_file={tmp_path / 'lables.jsonl'}: file not found, and no earlier "
            "part of the chain writes it",
        ),
        (
            [*label, "--then", "label", "--task", "numeric", "--iter_dir", str(tmp_path / "iter_9")],
            f"part 2 (scpo label): setting samples_file={tmp_path / 'iter_9' / 'samples.jsonl'} (unset: "
            "<iter_dir>/samples.jsonl): file not found",
        ),
    ):
        assert chain(argv) == 1
        err = capsys.readouterr().err
        assert f"scpo chain: error: {message}" in err and "nothing ran" in err, err
        assert "[chain] scpo label" not in err and not labels.exists()
    # what an earlier part writes (labels, pairs, a trained model) is an input of a later one
    check_chain_inputs(
        [
            label,
            make_pairs,
            ["train", "--model", "embedded", "--pairs_file", str(pairs), "--output_dir", str(model)],
            ["eval", "--model", str(model), "--eval_file", str(samples), "--eval_output", str(tmp_path / "e.json")],
        ]
    )
    assert chain([*label, "--then", *make_pairs]) == 0 and read_jsonl(pairs)
