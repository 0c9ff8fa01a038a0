"""The zebra puzzle generator: uniqueness proved by the SAT solver and re-checked by brute force, minimal clue
sets, the CNF agreeing with the clues' plain meaning, seeded splits, and named errors for bad input."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from helpers import read_jsonl, run_scpo, write_jsonl

from data_tools import zebra as zebra_data
from scpo.core.errors import ScpoError
from scpo.core.settings import set_settings
from scpo.tasks import get_task
from scpo.tasks._zebra_puzzles import CLUE_TYPES, Clue, Encoding, check_puzzle, generate, holds, parse_size, positions


def all_grids(houses: int, columns: dict[str, list[str]]):
    """Every grid (item -> house), by brute force: one permutation of houses per attribute."""
    for perms in itertools.product(*(itertools.permutations(range(houses)) for _ in columns)):
        yield {(a, v): perm[i] for (a, values), perm in zip(columns.items(), perms) for i, v in enumerate(values)}


@pytest.mark.parametrize("size", ["2*2", "2*3", "3*2", "3*3", "4*2", "2*6"])
def test_brute_force_finds_exactly_the_solution_and_every_clue_is_needed(size):
    houses, attributes = parse_size(size)
    for seed in range(15):
        p = generate(houses, attributes, random.Random(seed))
        fits = [g for g in all_grids(houses, p.columns) if all(holds(c, g) for c in p.clues)]
        assert fits == [positions(p.solution)], (size, seed)
        for i in range(len(p.clues)):  # minimal: without any one clue, another grid fits too
            rest = p.clues[:i] + p.clues[i + 1 :]
            assert sum(all(holds(c, g) for c in rest) for g in all_grids(houses, p.columns)) > 1, (size, seed, i)


@pytest.mark.parametrize("size", ["4*4", "5*5", "6*6", "6*2", "3*6"])
def test_large_puzzles_are_proved_unique(size):
    houses, attributes = parse_size(size)
    for seed in range(3):
        p = generate(houses, attributes, random.Random(seed))
        assert Encoding(houses, p.columns).solutions(p.clues, limit=2) == [positions(p.solution)]
        assert set(p.columns) >= {"Name"} and len(p.columns) == attributes


def test_cnf_of_each_clue_type_means_what_the_clue_says():
    houses, columns = 4, {"Name": ["Arnold", "Eric", "Peter", "Alice"], "Drink": ["tea", "milk", "water", "soda"]}
    enc = Encoding(houses, columns)
    rng = random.Random(0)
    grids = list(all_grids(houses, columns))
    for kind in CLUE_TYPES:
        for _ in range(5):
            x, y = ("Name", rng.choice(columns["Name"])), ("Drink", rng.choice(columns["Drink"]))
            clue = Clue(kind, x, house=rng.randint(1, houses)) if kind in ("found_at", "not_at") else Clue(kind, x, y)
            # the grids the solver enumerates under this one clue are exactly the grids where the clue holds
            solved = enc.solutions([clue], limit=10**6)
            assert sorted(map(sorted, (g.items() for g in solved))) == sorted(
                map(sorted, (g.items() for g in grids if holds(clue, g)))
            ), kind


def test_generator_files_are_seeded_split_by_seed_and_disjoint(tmp_path):
    args = ["--train_sizes", "2*2,2*3", "--train", "30", "--dev", "6", "--eval", "12", "--seed", "3"]
    zebra_data.main(["--output_dir", str(tmp_path / "a")] + args)
    zebra_data.main(["--output_dir", str(tmp_path / "b")] + args)
    for name in ("train", "dev", "eval"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()
    zebra_data.main(
        [
            "--output_dir",
            str(tmp_path / "c"),
            "--train_sizes",
            "2*2,2*3",
            "--train",
            "60",
            "--eval",
            "12",
            "--seed",
            "3",
        ]
    )
    assert (tmp_path / "c" / "eval.jsonl").read_bytes() == (tmp_path / "a" / "eval.jsonl").read_bytes()  # eval fixed
    splits = {name: read_jsonl(tmp_path / "a" / f"{name}.jsonl") for name in ("train", "dev", "eval")}
    texts = [{r["prompt"] for r in rows} for rows in splits.values()]
    assert all(not (a & b) for a, b in itertools.combinations(texts, 2))
    assert {r["size"] for r in splits["train"]} == {"2*2", "2*3"}
    stats = json.loads((tmp_path / "a" / "generator_stats.json").read_text())
    assert all(e["unique_share"] == 1.0 and e["clues_per_puzzle"] >= 1 for e in stats.values())
    task = get_task("zebra")
    for row in splits["eval"]:  # every gold grid fits its puzzle and its stored clues prove it
        assert task.check_problem(row) is None
    assert zebra_data.check_file(str(tmp_path / "a" / "eval.jsonl")) == 12


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ScpoError, match="houses must be 2..6, got 7"):
        zebra_data.main(["--output_dir", str(tmp_path), "--train_sizes", "7*2"])
    with pytest.raises(ScpoError, match="attributes must be 2..6, got 1"):
        parse_size("3*1")
    with pytest.raises(ScpoError, match="write houses\\*attributes"):
        parse_size("three")
    columns = {"Name": ["Arnold", "Eric"], "Drink": ["tea", "milk"]}
    base = {"id": "hand", "houses": 2, "columns": columns}
    unsolvable = [
        {"type": "found_at", "x": ["Name", "Arnold"], "house": 1},
        {"type": "same_house", "x": ["Name", "Arnold"], "y": ["Drink", "tea"]},
        {"type": "right_of", "x": ["Name", "Arnold"], "y": ["Name", "Eric"]},
    ]
    path = write_jsonl(tmp_path / "hand.jsonl", [{**base, "clues": unsolvable}])
    with pytest.raises(ScpoError, match=r"hand.jsonl:1: puzzle 'hand': no grid satisfies the clues: clues 1..3"):
        zebra_data.check_file(str(path))
    path = write_jsonl(tmp_path / "loose.jsonl", [{**base, "clues": unsolvable[:1]}])
    with pytest.raises(ScpoError, match="more than one grid"):
        zebra_data.check_file(str(path))
    solved = {"House 1": {"Name": "Arnold", "Drink": "milk"}, "House 2": {"Name": "Eric", "Drink": "tea"}}
    path = write_jsonl(tmp_path / "gold.jsonl", [{**base, "clues": unsolvable[:2], "gold": solved}])
    with pytest.raises(ScpoError, match="not the row's gold"):
        zebra_data.check_file(str(path))
    path = write_jsonl(tmp_path / "typo.jsonl", [{**base, "clues": [{"type": "left", "x": ["Name", "Arnold"]}]}])
    with pytest.raises(ScpoError, match="type must be one of"):
        zebra_data.check_file(str(path))
    with pytest.raises(ScpoError, match="not an attribute value"):
        check_puzzle(2, columns, [Clue("found_at", ("Name", "Zoe"), house=1)], "hand")


@pytest.mark.slow  # scpo in a subprocess
def test_generate_stage_zebra_fresh_puzzles_and_model_rewrites(tmp_path, tiny_model):
    """Both new-problem sources for zebra: fresh generator puzzles (proved unique, none equal to a seed or eval
    puzzle) and the model's rewrites (the tiny random model writes gibberish, dropped as unusable / empty)."""
    zebra_data.main(["--output_dir", str(tmp_path / "data"), "--train", "4", "--eval", "4"])
    common = (
        "--task",
        "zebra",
        "--iter_dir",
        str(tmp_path / "it"),
        "--problems_file",
        str(tmp_path / "data/train.jsonl"),
        "--eval_file",
        str(tmp_path / "data/eval.jsonl"),
        "--new_problems",
        "6",
    )
    run_scpo(
        "generate-problems",
        *common,
        "--generation_source",
        "generator",
        "--generator_sizes",
        "2*2,3*3",
        "--model",
        tiny_model,
    )
    fresh = read_jsonl(tmp_path / "it/generated_problems.jsonl")
    assert [r["size"] for r in fresh] == ["2*2", "3*3"] * 3 and all(r["origin"] == "generator" for r in fresh)
    known = {r["prompt"] for name in ("train", "eval") for r in read_jsonl(tmp_path / f"data/{name}.jsonl")}
    assert not known & {r["prompt"] for r in fresh}
    task = get_task("zebra")
    assert all(task.check_problem(row) is None for row in fresh)
    assert zebra_data.check_file(str(tmp_path / "it/generated_problems.jsonl")) == 6  # gold = the clues' one grid
    # The model's rewrites: one seed puzzle each, line breaks kept, unreadable candidates dropped.
    run_scpo(
        "generate-problems",
        *set_settings(list(common), iter_dir=tmp_path / "it2"),
        "--generation_prompt",
        "zebra",
        "--generation_shots",
        "1",
        "--model",
        tiny_model,
        "--backend",
        "hf",
        "--generation_max_tokens",
        "16",
    )
    kept = read_jsonl(tmp_path / "it2/generated_problems.jsonl")
    dropped = read_jsonl(tmp_path / "it2/generated_problems.dropped.jsonl")
    assert len(kept) + len(dropped) == 6 and not kept
    assert {r["reason"] for r in dropped} <= {"truncated", "empty", "unusable"} and all(
        len(r["seed_ids"]) == 1 for r in dropped
    )


def test_a_rewritten_puzzle_keeps_its_lines_and_one_without_the_layout_is_unusable():
    from scpo.problems import parse_problem
    from scpo.stages.generate import usable

    task = get_task("zebra")
    written = (
        "Problem: There are 2 houses, numbered 1 to 2.   Each house is occupied.\n - Each person has a unique "
        "name: `Zoe`, `Max`\n - Each person has a unique pet: `cat`, `dog`\n\n## Clues:\n1. Zoe is in the "
        "first house.\n\nSolution: Zoe, cat"
    )
    text = parse_problem(written, keep_lines=True)
    assert text.startswith("There are 2 houses") and "Solution" not in text and "\n- Each person" in text
    assert usable(task, text) and get_task("zebra").prompt_for({"prompt": text})
    assert not usable(task, parse_problem(written))  # whitespace collapsed to one line: no characteristics left
    assert not usable(task, "Who owns the zebra?")
