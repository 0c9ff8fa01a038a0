"""Adaptive sampling: the stopping rules on constructed vote sequences, and the sample stage's rounds."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass

import pytest
from helpers import read_jsonl, run_scpo, write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from scpo.adaptive import beta_leader_probability, dirichlet_leader_probability, leader, same_majority, should_stop
from scpo.tasks import get_task
from scpo.voting import vote

TASK = get_task("numeric")


def counts_of(answers):
    return list(Counter(a for a in answers if a is not None).values())


def majority(answers):
    return leader(vote(answers, TASK))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(2, 6).flatmap(
        lambda k: st.tuples(st.just(k), st.lists(st.sampled_from(["1", "2", "3", None]), min_size=k, max_size=k))
    )
)
def test_overtake_never_stops_while_the_majority_can_change(case):
    k, answers = case
    for drawn in range(1, k):
        prefix = answers[:drawn]
        if not should_stop(counts_of(prefix), drawn, k, "overtake"):
            continue
        # Every way the remaining samples could come out (a new answer "9" included) keeps the majority.
        for rest in itertools.product(["1", "2", "3", "9", None], repeat=k - drawn):
            assert same_majority(majority(prefix), majority(prefix + list(rest)), TASK), (prefix, rest)


@pytest.mark.parametrize(
    "counts, drawn, k, stops",
    [
        ([4], 4, 8, False),  # 4-0 with 4 to go: the runner-up could still tie
        ([5], 5, 8, True),  # 5-0 with 3 to go: settled
        ([4, 1], 5, 8, False),  # 4-1, 3 to go: 4 vs 4 possible
        ([5, 1], 6, 8, True),
        ([3, 3], 6, 8, False),
        ([], 6, 8, False),  # nothing parsed yet: keep drawing
        ([1, 1], 8, 8, True),  # k drawn: always stop
    ],
)
def test_overtake_on_constructed_counts(counts, drawn, k, stops):
    assert should_stop(counts, drawn, k, "overtake") is stops


@pytest.mark.parametrize(
    "answers, last_round, stops",
    [
        ([0, 0, 0, 0, 0], 5, True),  # the first window is unanimous
        ([0, 1, 0, 0, 0], 5, False),
        ([0, 1, 0, 0, 0, 1, 1, 1, 1, 1], 5, True),  # only the last window counts (ESC's reference code)
        ([1, 1, 1, 1, 1, 0, 0, 0, 0, 1], 5, False),
        ([0, 0, None, 0, 0], 5, False),  # a sample without an answer: not unanimous
    ],
)
def test_esc_stops_after_a_unanimous_window(answers, last_round, stops):
    counts = counts_of([None if a is None else str(a) for a in answers])
    assert should_stop(counts, len(answers), 40, "esc", answers=answers, last_round=last_round) is stops


def beta_tail_by_integration(v1: int, v2: int, steps: int = 20000) -> float:
    a, b = v1 + 1, v2 + 1
    norm = math.gamma(a + b) / (math.gamma(a) * math.gamma(b))
    h = 0.5 / steps
    f = [norm * x ** (a - 1) * (1 - x) ** (b - 1) for x in (0.5 + i * h for i in range(steps + 1))]
    return h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))  # Simpson


@pytest.mark.parametrize("v1, v2", [(0, 0), (1, 0), (4, 0), (3, 1), (5, 2), (7, 3), (12, 9)])
def test_beta_probability_matches_the_integral(v1, v2):
    assert beta_leader_probability(v1, v2) == pytest.approx(beta_tail_by_integration(v1, v2), abs=1e-9)


def test_beta_and_dirichlet_rules():
    # Adaptive-Consistency at 0.95: 4 agreeing samples settle (31/32), 3-1 does not (13/16).
    assert should_stop([4], 4, 8, "beta") and not should_stop([3, 1], 4, 8, "beta")
    assert not should_stop([4], 4, 8, "beta", min_samples=5)
    assert dirichlet_leader_probability([6]) > 0.95 > dirichlet_leader_probability([2, 1])
    assert dirichlet_leader_probability([3, 1, 1]) == dirichlet_leader_probability([1, 3, 1])  # order-free
    assert should_stop([8], 8, 8, "dirichlet") and not should_stop([1, 1, 1], 3, 8, "dirichlet")


def test_leader_needs_a_unique_top():
    assert majority(["1", "1", "2"]) == "1"
    assert majority(["1", "2"]) is None and majority([None, None]) is None
    assert same_majority(None, None, TASK) and not same_majority("1", None, TASK)


@dataclass
class ConstantTask(type(TASK)):
    """Every completion answers the same: votes settle as early as the rule allows."""

    truncated_completions_vote: bool = True

    def extract(self, completion: str) -> str | None:
        return "7"


@pytest.fixture(scope="module")
def hf_sampler(tiny_model):
    from scpo.sampling.hf_engine import HfSampler

    return HfSampler(tiny_model, dtype="float32", max_tokens=4)


PROBLEMS = [{"id": f"q{i}", "prompt": f"What is {i} + 1?"} for i in range(3)]


@pytest.mark.slow  # a sampling engine: transformers generate on the tiny model
@pytest.mark.parametrize("rule, drawn", [("beta", 4), ("overtake", 6), ("esc", 4), ("none", 8)])
def test_sample_stage_stops_when_settled_and_records_the_count(hf_sampler, rule, drawn):
    from scpo.labelers.votes import label_rows
    from scpo.sampling.draw import sample_shard
    from scpo.stages.sample import SampleSettings

    s = SampleSettings(
        k=8,
        max_tokens=4,
        adaptive=rule,
        adaptive_min_samples=4,
        adaptive_round=4 if rule == "esc" else 2,
        adaptive_audit=1.0 if rule != "none" else 0.0,
    )
    rows, counts = sample_shard(PROBLEMS, hf_sampler, ConstantTask(), s)
    assert len(rows) == drawn * len(PROBLEMS)
    for p in PROBLEMS:
        mine = [r for r in rows if r["id"] == p["id"]]
        assert [r["sample_index"] for r in mine] == list(range(drawn))
        if rule != "none":
            assert {r["num_drawn"] for r in mine} == {drawn}
    if rule != "none":
        assert counts["samples_drawn"] == drawn * 3 and counts["stopped_early"] == 3
        assert counts["audit_prompts"] == 3 and counts["audit_majority_changed"] == 0
        assert counts["audit_extra_tokens"] > 0  # the audit really drew the rest of k
    labeled, _ = label_rows(rows, ConstantTask(), progress=False)
    assert {r["k"] for r in labeled} == {drawn}  # the labeler's k is what was drawn


@pytest.mark.slow  # a sampling engine: transformers generate on the tiny model
def test_label_refuses_a_prompt_whose_drawn_count_does_not_match(hf_sampler):
    from scpo.core.errors import ScpoError
    from scpo.labelers.votes import label_rows
    from scpo.sampling.draw import sample_shard
    from scpo.stages.sample import SampleSettings

    rows, _ = sample_shard(PROBLEMS[:1], hf_sampler, ConstantTask(), SampleSettings(k=8, adaptive="beta"))
    with pytest.raises(ScpoError, match="'q0': 3 voting samples but num_drawn=4"):
        label_rows(rows[1:], ConstantTask(), progress=False)


@pytest.mark.slow
def test_vllm_adaptive_samples_are_the_first_samples_of_the_fixed_k_draw(tmp_path, tiny_model):
    """vLLM seeds the i-th of n samples with seed + i, and a round holding d samples asks with seed + d."""
    write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    common = (
        "--model",
        tiny_model,
        "--task",
        "numeric",
        "--k",
        "6",
        "--max_tokens",
        "6",
        "--dtype",
        "float32",
        "--enforce_eager",
        "--problems_file",
        str(tmp_path / "problems.jsonl"),
    )
    run_scpo("sample", *common, "--samples_file", str(tmp_path / "fixed.jsonl"))
    run_scpo(
        "sample",
        *common,
        "--samples_file",
        str(tmp_path / "adaptive.jsonl"),
        "--adaptive",
        "overtake",
        "--adaptive_min_samples",
        "2",
        "--adaptive_round",
        "1",
    )
    fixed = {(r["id"], r["sample_index"]): r["completion"] for r in read_jsonl(tmp_path / "fixed.jsonl")}
    adaptive = read_jsonl(tmp_path / "adaptive.jsonl")
    assert len(adaptive) >= 2 * len(PROBLEMS)
    assert [r["completion"] for r in adaptive] == [fixed[(r["id"], r["sample_index"])] for r in adaptive]
    run_scpo(
        "label",
        "--task",
        "numeric",
        "--samples_file",
        str(tmp_path / "adaptive.jsonl"),
        "--labels_file",
        str(tmp_path / "labels.jsonl"),
    )
    assert all(r["k"] == r["num_drawn"] for r in read_jsonl(tmp_path / "labels.jsonl"))
