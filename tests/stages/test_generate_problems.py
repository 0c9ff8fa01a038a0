"""New problems (near-duplicate removal, parsing, the generate stage) and the semi-supervised mix."""

from __future__ import annotations

import json
import random

import pytest
from helpers import data_file, read_jsonl, run_scpo, write_jsonl

from scpo.core.errors import ScpoError
from scpo.pairs import mix_sources
from scpo.problems import NearDuplicates, jaccard, normalize, parse_problem, shingles

SEEDS = [
    (
        "s1",
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
    ),
    (
        "s2",
        "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
        "How much did she earn?",
    ),
    ("s3", "What is 3 + 4?"),
]


@pytest.mark.parametrize(
    "candidate, expected",
    [
        # spelling, case, spacing and final punctuation only: the same problem
        ("what is 3+4", "s3"),
        ("WHAT IS 3 + 4 ?", "s3"),
        # one number changed in a long problem: still a copy of the seed
        (
            "Natalia sold clips to 36 of her friends in April, and then she sold half as many clips in May. "
            "How many clips did Natalia sell altogether in April and May?",
            "s1",
        ),
        (
            "Weng earns $12 an hour for babysitting. Yesterday she did 50 minutes of babysitting. How much did she earn?",
            "s2",
        ),
        # genuinely different problems
        ("What is 3 + 5?", None),
        ("A train travels 60 miles per hour for 3 hours. How far does it go?", None),
        (
            "Weng earns $15 an hour mowing lawns. On Sunday she mowed for 2 hours and 30 minutes. What did she make?",
            None,
        ),
    ],
)
def test_near_duplicates_on_crafted_candidates(candidate, expected):
    index = NearDuplicates(SEEDS, n=3, threshold=0.6)
    hit = index.match(candidate)
    assert (hit[0] if hit else None) == expected


def test_near_duplicates_agree_with_brute_force_jaccard():
    """The prefix filter never misses a pair at or above the threshold (random texts, exact check)."""
    rng = random.Random(0)
    words = "a b c d e f g h how many apples does tom have 1 2 3".split()
    texts = [" ".join(rng.choices(words, k=rng.randint(2, 14))) for _ in range(300)]
    known = [(f"k{i}", t) for i, t in enumerate(texts[:150])]
    index = NearDuplicates(known, n=2, threshold=0.6)
    for text in texts[150:]:
        best = max((jaccard(shingles(text, 2), shingles(t, 2)) for _, t in known), default=0)
        exact = any(normalize(text) == normalize(t) for _, t in known)
        hit = index.match(text)
        assert (hit is not None) == (best >= 0.6 or exact), text
        if hit and not exact:
            assert hit[1] == pytest.approx(best)


def test_generated_candidates_are_deduplicated_against_each_other():
    index = NearDuplicates(SEEDS)
    index.add("gen0", "Tom has 5 apples and buys 7 more. How many apples does he have now?")
    assert index.match("Tom has 5 apples and buys 7 more apples. How many apples does he have now?")[0] == "gen0"


@pytest.mark.parametrize(
    "completion, problem",
    [
        ("Problem: Sam has 3 cats. How many legs?\nAnswer: 12", "Sam has 3 cats. How many legs?"),
        (
            "**New problem:** A box holds 6 eggs.  How many in 4 boxes?\n\nSolution: 6*4 = 24",
            "A box holds 6 eggs. How many in 4 boxes?",
        ),
        ("Problem 5: What is 9 - 2?", "What is 9 - 2?"),
        (
            "  Lily reads 10 pages a day. How many pages in a week?\nStep 1: 10 * 7",
            "Lily reads 10 pages a day. How many pages in a week?",
        ),
        ("Answer: 4", ""),
    ],
)
def test_parse_problem(completion, problem):
    assert parse_problem(completion) == problem


@pytest.mark.slow  # scpo in a subprocess
def test_generate_stage_keeps_provenance_and_drops_duplicates(tmp_path, tiny_model):
    """The tiny random model writes gibberish: the stage's plumbing is what is checked (real generation, hf)."""
    seeds = [{"id": f"q{i}", "prompt": f"What is {i} + {i + 1}?"} for i in range(6)]
    write_jsonl(tmp_path / "seeds.jsonl", seeds)
    args = (
        "--model",
        tiny_model,
        "--backend",
        "hf",
        "--task",
        "numeric",
        "--iter_dir",
        str(tmp_path),
        "--problems_file",
        str(tmp_path / "seeds.jsonl"),
        "--new_problems",
        "6",
        "--generation_max_tokens",
        "24",
        "--dedupe_threshold",
        "0.3",
    )
    run_scpo("generate-problems", *args)
    kept = read_jsonl(tmp_path / "generated_problems.jsonl")
    dropped = read_jsonl(tmp_path / "generated_problems.dropped.jsonl")
    assert len(kept) + len(dropped) == 6
    for row in kept:
        assert (
            row["origin"] == "generated"
            and len(row["seed_ids"]) == 4
            and set(row["seed_ids"]) <= {s["id"] for s in seeds}
        )
    assert all(
        r["reason"] in ("truncated", "empty", "duplicate_of_seed", "duplicate_of_eval", "duplicate_of_generated")
        for r in dropped
    )
    manifest = json.loads((tmp_path / "generated_problems.jsonl.manifest.json").read_text())
    assert manifest["counts"]["kept"] == len(kept)
    # The sample stage adds them to the seed problems (new_problems > 0); their rows say where they came from.
    run_scpo("sample", *args, "--k", "2", "--max_tokens", "4")
    samples = read_jsonl(tmp_path / "samples.jsonl")
    assert {r["id"] for r in samples} == {p["id"] for p in seeds + kept}
    assert {r["id"] for r in samples if r.get("origin") == "generated"} == {p["id"] for p in kept}


@pytest.mark.slow  # scpo in a subprocess
def test_sample_stage_asks_for_the_generated_problems(tmp_path, tiny_model):
    write_jsonl(tmp_path / "seeds.jsonl", [{"id": "q", "prompt": "What is 1 + 1?"}])
    proc = run_scpo(
        "sample",
        "--model",
        tiny_model,
        "--backend",
        "hf",
        "--iter_dir",
        str(tmp_path),
        "--problems_file",
        str(tmp_path / "seeds.jsonl"),
        "--new_problems",
        "4",
        check=False,
    )
    assert proc.returncode == 1 and "run `scpo generate-problems`" in proc.stderr


def pairs_of(n_gold: int, n_votes: int) -> list[dict]:
    return [{"id": f"g{i}", "source": "gold"} for i in range(n_gold)] + [
        {"id": f"v{i}", "source": "votes"} for i in range(n_votes)
    ]


@pytest.mark.parametrize(
    "n_gold, n_votes, ratio, want_gold, want_votes",
    [
        (100, 100, 0.5, 100, 100),
        (100, 100, 0.25, 33, 100),  # gold cut to a quarter of the mix
        (20, 100, 0.5, 20, 20),  # votes cut down to the scarce gold
        (30, 70, 0.3, 30, 70),  # already the ratio
        (50, 50, 0.0, 0, 50),
        (50, 50, 1.0, 50, 0),
    ],
)
def test_semi_supervised_mix_ratio(n_gold, n_votes, ratio, want_gold, want_votes):
    mixed = mix_sources(pairs_of(n_gold, n_votes), ratio, seed=1)
    assert sum(p["source"] == "gold" for p in mixed) == want_gold
    assert sum(p["source"] == "votes" for p in mixed) == want_votes
    assert mixed == sorted(mixed, key=pairs_of(n_gold, n_votes).index)  # order kept
    assert mix_sources(pairs_of(n_gold, n_votes), ratio, seed=1) == mixed  # deterministic


@pytest.mark.slow  # scpo in a subprocess
def test_mix_ratio_through_the_stages(tmp_path):
    """Gold-labeled problems give (correct, incorrect) pairs with w = 1, unlabeled ones vote pairs, mixed 1:3."""

    def prompt(pid, gold=None):
        row = {"id": pid, "prompt": f"problem {pid}", **({"gold": gold} if gold else {})}
        return [{**row, "sample_index": i, "completion": f"The answer is {a}."} for i, a in enumerate([1, 1, 1, 2])]

    rows = [r for i in range(8) for r in prompt(f"g{i}", gold="2") + prompt(f"u{i}")]
    write_jsonl(tmp_path / "samples.jsonl", rows)
    run_scpo("label", "--task", "numeric", "--iter_dir", str(tmp_path))
    run_scpo(
        "pairs", "--task", "numeric", "--iter_dir", str(tmp_path), "--mode", "semi_supervised", "--gold_ratio", "0.25"
    )
    pairs = read_jsonl(tmp_path / "pairs.jsonl")
    gold = [p for p in pairs if p["source"] == "gold"]
    assert len(gold) == 3 and len(pairs) == 11  # 3 / 11 = 0.27: the nearest to 1:3 keeping all 8 vote pairs
    assert all(p["weight"] == 1.0 and p["chosen_answer"] == "2" and p["id"].startswith("g") for p in gold)
    counts = json.loads((tmp_path / "pairs.jsonl.manifest.json").read_text())["counts"]
    assert counts["pairs_by_source"] == {"gold": 3, "votes": 8} and counts["dropped_for_ratio"] == {"gold": 5}


@pytest.mark.slow  # scpo in a subprocess
def test_gold_ratio_needs_semi_supervised_mode(tmp_path):
    write_jsonl(tmp_path / "labels.jsonl", [{"id": "a", "prompt": "p", "completion": "1", "answer_group": 0}])
    proc = run_scpo("pairs", "--iter_dir", str(tmp_path), "--gold_ratio", "0.5", check=False)
    assert proc.returncode == 1 and "needs mode: semi_supervised" in proc.stderr


def test_real_gsm8k_problem_is_its_own_duplicate():
    rows = [json.loads(line) for line in data_file("gsm8k/train.jsonl").read_text().splitlines()[:200]]
    index = NearDuplicates([(str(i), r["question"]) for i, r in enumerate(rows)])
    assert all(index.match(r["question"])[0] == str(i) for i, r in enumerate(rows[:50]))
    with pytest.raises(ScpoError):
        mix_sources([], 1.5)


def test_scpo_generation_prompt_is_the_papers_four_shot_query_prompt():
    from scpo.problems import SCPO_EXAMPLE, SCPO_PROMPT, few_shot_prompt
    from scpo.stages.generate import GENERATION_PROMPTS

    prompt = few_shot_prompt(*GENERATION_PROMPTS["scpo"][:1], ["A?", "B?", "C?", "D?"], SCPO_EXAMPLE, "\n")
    assert prompt == (
        "Q: A?\nQ: B?\nQ: C?\nQ: D?\nPrompt: Based on the examples above, generate ONE solvable math "
        "word problem with similar difficulty. Note that all the information needed to solve the "
        "problem should be included in the question. Output the question and nothing else.\nQ:"
    )
    assert GENERATION_PROMPTS["scpo"][0] == SCPO_PROMPT
    assert parse_problem(" Tom has 3 apples. How many?") == "Tom has 3 apples. How many?"
    assert parse_problem("Q: Tom has 3 apples.") == "Tom has 3 apples."
