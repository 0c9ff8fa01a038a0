"""Every pattern applied to model-written text runs in linear time: degenerate outputs (long runs of spaces,
newlines, digits, nested \\boxed{, repeated "The answer is") get a per-call time budget, for every task's extract
and the judge's and the new-problem parser's patterns. benchmarks/bench_patterns.py prints the timing table."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scpo.judge import parse_score, parse_winner
from scpo.problems import parse_problem
from scpo.tasks import TASKS, get_task

N = 20_000  # characters: a catastrophic pattern takes seconds to hours here; a linear one well under 20 ms
BUDGET_S = 0.2  # CPU seconds per call (measured: under 15 ms); CPU time, so a loaded machine cannot fail it
FRAGMENTS = [
    " ",
    "\n",
    "\t",
    ":",
    "1",
    "12,",
    ".",
    "$",
    "**",
    "\\boxed{",
    "}",
    "The answer is ",
    "answer",
    "Score",
    "Score: ",
    "Winner",
    "(",
    "A",
    "points",
    "Problem",
    "Answer:",
    "\\frac{1}{2}",
    "=",
    "+",
]
ADVERSARIAL = {
    "spaces after 'The answer is'": "The answer is" + " " * N + "x",
    "newlines after 'The answer is'": "The answer is" + "\n" * N + "x",
    "spaces then '$'": "The answer is $" + " " * N + "$.",
    "spaces after 'Score'": "Score" + " " * N + "x",
    "spaces after 'Winner'": "Winner" + " " * N + "x",
    "spaces after 'Problem'": "Problem" + " " * N + "x",
    "newlines": "\n" * N,
    "digit run": "1" * N,
    "digits and commas": "1," * (N // 2),
    "nested \\boxed{": "\\boxed{" * (N // 7),
    "unclosed \\boxed{1": "\\boxed{1" * (N // 8),
    "repeated 'The answer is '": "The answer is " * (N // 14),
    "'**' after 'Score'": "Score" + "*" * N,
    # zebra: a solution nested ~1000 levels deep (json recursed past Python's limit) and an unterminated grid of
    # repeated cells (json_repair is quadratic on it: 3.4 s at 400 KB)
    "solution nested 1000 deep": '{"solution": ' + "[" * 1000,
    "unterminated grid of repeated cells": '{"solution": {"House 1": {"Name": "' + 'x", "' * (N // 2),
}


def parsers():
    out = {f"{name}.extract": get_task(name).extract for name in TASKS.names()}
    out.update({f"{name}.extract_gold": get_task(name).extract_gold for name in TASKS.names()})
    out.update(
        {"judge.parse_score": parse_score, "judge.parse_winner": parse_winner, "problems.parse_problem": parse_problem}
    )
    return out


PARSERS = parsers()


def timed(fn, text: str) -> float:
    """CPU seconds of this thread: a catastrophic pattern burns CPU, while wall time also counts the waits of a
    process descheduled beside other jobs (the wall-clock version of this test failed under load)."""
    start = time.thread_time()
    fn(text)
    return time.thread_time() - start


@pytest.mark.parametrize("text_name", sorted(ADVERSARIAL))
@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_degenerate_text_is_parsed_within_the_budget(parser, text_name):
    seconds = timed(PARSERS[parser], ADVERSARIAL[text_name])
    assert seconds < BUDGET_S, f"{parser} took {seconds:.2f} s on {len(ADVERSARIAL[text_name])} chars of {text_name}"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FRAGMENTS), st.integers(1, 2000)), min_size=1, max_size=12))
def test_random_runs_of_adversarial_fragments_stay_within_the_budget(runs):
    text = "".join(fragment * count for fragment, count in runs)
    for name, fn in PARSERS.items():
        seconds = timed(fn, text)
        assert seconds < BUDGET_S, f"{name} took {seconds:.2f} s on {len(text)} chars: {runs}"


def test_the_rewritten_patterns_still_read_real_answers():
    gsm, math, mc = get_task("gsm8k"), get_task("math"), get_task("multiple_choice")
    assert gsm.extract("so 3 + 4 = 7.\nThe answer is: $\\boxed{7}$.") == "7"
    assert gsm.extract("The answer is $1,000.") == "1000" and gsm.extract("Thus \\boxed{18 \\text{ dollars}}") == "18"
    assert math.extract("The answer is $\\frac{1}{2}$.") == "\\frac{1}{2}"
    assert math.extract("The answer is:\n\n 6 - 5i .") == "6 - 5i"
    assert math.extract("The answer is $x$ and more") is None
    assert mc.extract("The answer is (B)") == "B" and mc.extract("answer: c.") == "C" and mc.extract("\n  (D)\n") == "D"
    assert (
        parse_score("**Score:** 3") == 3.0
        and parse_score("I award 4 points") == 4.0
        and parse_score("v1.5 points") == 1.5
    )
    assert parse_winner("**Winner:** (B)") == "B"
    assert parse_problem("Problem 1: Tom has 3 apples.\nAnswer: 3") == "Tom has 3 apples."


def test_a_deeply_nested_data_row_is_a_named_malformed_json_error(tmp_path):
    from scpo.core.errors import ScpoError
    from scpo.core.io import read_rows

    path = tmp_path / "problems.jsonl"
    path.write_text('{"id": "p1", "prompt": "ok"}\n' + '{"id": ' + "[" * 50_000 + "\n")
    with pytest.raises(ScpoError, match=r"problems.jsonl:2: malformed JSON \(nested too deeply"):
        read_rows(path)


def test_the_pattern_benchmark_covers_every_tasks_extraction_and_the_zebra_cases_from_1_kb_to_1_mb():
    """benchmarks/bench_patterns.py prints ms per KB at each size for every task's extract, the zebra nesting and
    json-repair texts among them, and names a row that is not flat (issue 32)."""
    import importlib.util

    from helpers import ROOT

    spec = importlib.util.spec_from_file_location("bench_patterns", ROOT / "benchmarks" / "bench_patterns.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    calls = bench.calls()
    assert {f"{name}.extract" for name in TASKS.names()} <= set(calls)
    for text_name, opening in (
        ("solution nested n deep", '{"solution": ['),
        ("unterminated grid of repeated cells", '{"solution": {"House 1": {"Name": "x", "x", "'),
    ):
        for n in (1000, 1_000_000):
            text = bench.TEXTS[text_name](n)
            assert text.startswith(opening) and abs(len(text) - n) < 5, (text_name, len(text))
    parser = bench.call(*calls["zebra.extract"])
    seconds = bench.cpu_seconds(parser, bench.TEXTS["solution nested n deep"](1000), at_least=0.001)
    assert 0 < bench.ms_per_kb(seconds, 1000) < 10
    assert bench.growth([0.1, 0.1, 0.12, 0.1]) == pytest.approx(1.0)  # linear
    assert bench.growth([0.001, 0.01, 0.1, 1.0]) > bench.GROWTH  # quadratic: 10x per KB per 10x size
    assert bench.growth([0.1, None]) is None  # a timeout
    assert "--sizes" in open(spec.origin).read() and "1000,10000,100000,1000000" in open(spec.origin).read()
