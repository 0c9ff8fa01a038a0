"""The internal-reward labelers as stages on a tiny model: judge (hf backend), implicit / CREAM rewards, pairs."""

from __future__ import annotations

import json
import math

import pytest
from helpers import read_jsonl, run_scpo, write_jsonl

PROBLEMS = [{"id": f"q{i}", "prompt": f"What is {i} + {i + 2}?", "gold": str(2 * i + 2)} for i in range(4)]


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, tiny_model):
    """4 prompts x 3 samples of the tiny model (transformers backend), with the exact tokens."""
    d = tmp_path_factory.mktemp("reward")
    write_jsonl(d / "problems.jsonl", PROBLEMS)
    run_scpo(
        "sample",
        "--backend",
        "hf",
        "--model",
        tiny_model,
        "--iter_dir",
        str(d),
        "--k",
        "3",
        "--max_tokens",
        "8",
        "--task",
        "numeric",
        "--save_token_ids",
        "--dtype",
        "float32",
        "--temperature",
        "1.0",
    )
    return d


@pytest.fixture(scope="module")
def other_model(tmp_path_factory, embedded_model):
    from scpo.core.models import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("models") / "tiny_other", seed=1))


@pytest.mark.slow  # scpo in a subprocess
def test_implicit_reward_is_log_ratio_and_length_normalised_without_reference(sampled, tiny_model, other_model):
    from scpo.scoring import SequenceScorer

    samples = read_jsonl(sampled / "samples.jsonl")
    common = (
        "--model",
        tiny_model,
        "--samples_file",
        str(sampled / "samples.jsonl"),
        "--task",
        "numeric",
        "--dtype",
        "float32",
    )
    run_scpo("label", "--labeler", "implicit", *common, "--labels_file", str(sampled / "implicit0.jsonl"))
    rows = read_jsonl(sampled / "implicit0.jsonl")
    assert [r["implicit_kind"] for r in rows] == ["length_normalised"] * len(samples)
    for r, s in zip(rows, samples):
        assert r["reward"] == pytest.approx(s["logprob"] / s["num_tokens"])
        assert r["reference_logp"] is None and "correct" in r  # gold only for reporting

    run_scpo(
        "label",
        "--labeler",
        "cream",
        *common,
        "--reference_model",
        other_model,
        "--labels_file",
        str(sampled / "cream.jsonl"),
    )
    rows = read_jsonl(sampled / "cream.jsonl")
    ref = SequenceScorer(other_model, dtype="float32").logps(samples, lambda r: r["messages"])
    for r, s, q in zip(rows, samples, ref):
        assert r["implicit_kind"] == "dpo" and r["reference_logp"] == pytest.approx(q, abs=1e-4)
        assert r["reward"] == pytest.approx(s["logprob"] - q, abs=1e-3)
        # the previous iteration's model is M_0 here: its length-normalised log-likelihood
        assert r["previous_reward"] == pytest.approx(q / s["num_tokens"], abs=1e-4)
    # The sampler's log-probs are the forward's (so r is a log ratio over the same tokens, not noise).
    own = SequenceScorer(tiny_model, dtype="float32").logps(samples, lambda r: r["messages"])
    assert max(abs(a - s["logprob"]) for a, s in zip(own, samples)) < 1e-3

    run_scpo(
        "pairs",
        "--labeler",
        "cream",
        "--labels_file",
        str(sampled / "cream.jsonl"),
        "--pairs_file",
        str(sampled / "cream_pairs.jsonl"),
        "--task",
        "numeric",
    )
    pairs = read_jsonl(sampled / "cream_pairs.jsonl")
    assert pairs and all(0 <= p["consistency"] <= 1 and p["chosen_reward"] > p["rejected_reward"] for p in pairs)
    assert all({"ref_chosen_logps", "chosen_token_ids", "weight"} <= set(p) for p in pairs)


@pytest.mark.slow  # ~45 s: three stage processes
def test_judge_labeler_hf_backend_sharded_resumable_and_unparsed_recorded(sampled, tiny_model):
    args = (
        "label",
        "--labeler",
        "judge",
        "--backend",
        "hf",
        "--model",
        tiny_model,
        "--task",
        "numeric",
        "--samples_file",
        str(sampled / "samples.jsonl"),
        "--labels_file",
        str(sampled / "judge.jsonl"),
        "--judge_samples",
        "2",
        "--judge_max_tokens",
        "4",
        "--judge_response_prefix",
        "Score:",
        "--dtype",
        "float32",
        "--num_shards",
        "2",
    )
    run_scpo(*args, "--shard_index", "0")
    shards = sorted((sampled / "judge.jsonl.judge_shards").glob("*/*.jsonl"))
    assert [p.name for p in shards] == ["00000-of-00002.jsonl"] and not (sampled / "judge.jsonl").exists()
    first = shards[0].stat().st_mtime_ns
    run_scpo(*args)
    assert shards[0].stat().st_mtime_ns == first  # the finished shard is not judged again
    rows = read_jsonl(sampled / "judge.jsonl")
    assert len(rows) == 12 and all(len(r["judge_outputs"]) == 2 for r in rows)
    for r in rows:
        assert all(o.startswith("Score:") for o in r["judge_outputs"])
        assert r["judge_unparsed"] == sum(s is None for s in r["judge_scores"])
        readable = [s for s in r["judge_scores"] if s is not None]
        assert r["reward"] == (sum(readable) / len(readable) if readable else None)
    again = run_scpo(*args)
    assert "up to date" in again.stdout


@pytest.mark.slow  # scpo in a subprocess
def test_scir_pairs_keep_only_agreeing_pairs_from_labels(tmp_path):
    """The pairs stage on a labels file: the judge and the implicit reward agree on one prompt only."""
    rows = []
    for pid, judge, implicit in (
        ("agree", [5.0, 1.0, 3.0], [2.0, -2.0, 0.0]),
        ("disagree", [5.0, 1.0, 3.0], [-2.0, 2.0, 0.0]),
    ):
        for i in range(3):
            rows.append(
                {
                    "id": pid,
                    "prompt": "q",
                    "completion": f"c{i}",
                    "labeler": "scir",
                    "reward": judge[i],
                    "judge_score": judge[i],
                    "implicit_reward": implicit[i],
                }
            )
    write_jsonl(tmp_path / "labels.jsonl", rows)
    run_scpo("pairs", "--labeler", "scir", "--iter_dir", str(tmp_path))
    pairs = read_jsonl(tmp_path / "pairs.jsonl")
    assert [p["id"] for p in pairs] == ["agree"]
    assert pairs[0]["p_judge"] == pytest.approx(1 / (1 + math.exp(-4)))
    counts = json.loads((tmp_path / "pairs.jsonl.manifest.json").read_text())["counts"]
    assert counts["agreement_rate"] == 0.5 and counts["skipped"] == {"disagree": 1}


@pytest.mark.slow  # scpo in a subprocess
def test_labels_from_another_labeler_are_an_error(tmp_path):
    write_jsonl(
        tmp_path / "labels.jsonl", [{"id": "a", "prompt": "q", "completion": "c", "labeler": "judge", "reward": 1.0}]
    )
    proc = run_scpo("pairs", "--labeler", "cream", "--iter_dir", str(tmp_path), check=False)
    assert proc.returncode == 1 and "labeler=cream" in proc.stderr
