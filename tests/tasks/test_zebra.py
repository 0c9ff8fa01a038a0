"""The zebra task: grading real-looking outputs, exact-grid votes, cell accuracy, gold formats, the prompt."""

from __future__ import annotations

import json

import pytest

from scpo.core.errors import ScpoError
from scpo.stages.eval import grade_problem, summarize
from scpo.tasks import get_task
from scpo.tasks.zebra import ZEBRA_GRID, layout
from scpo.voting import UNPARSED, vote

GOLD = {"House 1": {"Name": "Arnold", "Drink": "tea"}, "House 2": {"Name": "Peter", "Drink": "water"}}
RIGHT = (
    '{"reasoning": "Clue 1 {so}", "solution": {"House 1": {"Name": "Arnold", "Drink": "tea"}, '
    '"House 2": {"Name": "Peter", "Drink": "water"}}}'
)
WRONG_CELL = RIGHT.replace('"Drink": "tea"', '"Drink": "milk"')
PUZZLE = (
    "There are 2 houses, numbered 1 to 2 from left to right, as seen from across the street. Each house is "
    "occupied by a different person. Each house has a unique attribute for each of the following "
    "characteristics:\n - Each person has a unique name: `Peter`, `Arnold`\n"
    " - Each person has a unique favorite drink: `water`, `tea`\n\n## Clues:\n1. Arnold is in the first house.\n"
    "2. The one who only drinks tea is Arnold."
)


@pytest.fixture
def task():
    return get_task("zebra")


@pytest.mark.parametrize(
    "name, completion, cells",
    [
        ("fenced JSON", f"Here is my answer:\n```json\n{RIGHT}\n```", 1.0),
        ("prose after the JSON", RIGHT + "\n\nSo Arnold drinks tea. {Done}", 1.0),
        ("a missing closing brace", RIGHT[:-1], 1.0),
        ("a missing closing brace, then prose", RIGHT[:-1] + "\nI hope this helps!", 1.0),
        (
            "house keys in another case and order",
            '{"solution": {"house 2": {"drink": "Water ", "NAME": "peter"}, "HOUSE 1": {"Name": ["Arnold"], "Drink": "TEA"}}}',
            1.0,
        ),
        ("a wrong cell", WRONG_CELL, 0.75),
        ("two solutions: the last counts", WRONG_CELL + "\nWait, let me fix that:\n" + RIGHT, 1.0),
        ("two solutions, the wrong one last", RIGHT + "\nActually:\n" + WRONG_CELL, 0.75),
        ("trailing commas and single quotes", RIGHT.replace('"', "'").replace("}}}", "},},}"), 1.0),
    ],
)
def test_grading_real_looking_outputs(task, name, completion, cells):
    gold = task.extract_gold(GOLD)
    answer = task.extract(completion)
    assert answer is not None, name
    assert task.equivalent(answer, gold) == (cells == 1.0), name
    assert task.score(answer, gold) == pytest.approx(cells), name


@pytest.mark.parametrize(
    "completion",
    [
        "I could not solve it.",
        '{"reasoning": "no idea"}',
        '{"solution": {"House 1": {"Name": "___", "Drink": "___"}}}',
        "",
    ],
)
def test_no_solution_is_no_answer(task, completion):
    assert task.extract(completion) is None
    assert task.score(None, task.extract_gold(GOLD)) == 0.0


def test_votes_exact_grid_only(task):
    spaced = RIGHT.replace('"tea"', '" Tea  "').replace('"Peter"', '"PETER"')
    answers = [task.extract(c) for c in (RIGHT, spaced, WRONG_CELL, "no answer")]
    votes = vote(answers, task)
    assert votes.group_of[0] == votes.group_of[1] != votes.group_of[2]  # case / whitespace: the same answer
    assert votes.group_of[3] == UNPARSED
    assert [g.votes for g in votes.groups] == [2, 1]


def test_gold_as_object_text_or_zebralogic_rows(task):
    as_object = task.extract_gold(GOLD)
    assert task.extract_gold(json.dumps(GOLD)) == as_object
    rows = {"header": ["House", "Name", "Drink"], "rows": [["1", "Arnold", "tea"], ["2", "Peter", "water"]]}
    assert task.extract_gold(rows) == as_object
    assert task.extract_gold({"solution": GOLD}) == as_object
    assert task.extract_gold("not a grid") is None


def test_prompt_is_zeroevals_template_with_the_rows_answer_template(task):
    row = {"id": 1, "prompt": PUZZLE, "houses": 2, "columns": ["Name", "Drink"]}
    (message,) = task.prompt_for(row)
    content = message["content"]
    assert content.startswith(ZEBRA_GRID.split("{puzzle}")[0]) and PUZZLE in content
    template = json.loads(content.split("json format:\n\n", 1)[1])
    assert template == {
        "reasoning": "___",
        "solution": {"House 1": {"Name": "___", "Drink": "___"}, "House 2": {"Name": "___", "Drink": "___"}},
    }
    # A puzzle text alone (a model-written puzzle): houses and headers read from the text.
    assert task.build_prompt(PUZZLE) == task.prompt_for(row)
    assert layout(PUZZLE) == (2, ["Name", "Drink"])
    with pytest.raises(ScpoError, match="There are N houses"):
        task.build_prompt("Who owns the zebra?")


def test_gold_that_does_not_fit_the_puzzle_is_named(task):
    row = {"id": "p", "prompt": PUZZLE, "gold": GOLD}
    assert task.check_problem(row) is None
    three = {**GOLD, "House 3": {"Name": "Eric", "Drink": "milk"}}
    assert "houses ['1', '2', '3']" in task.check_problem({**row, "gold": three})
    other = {"House 1": {"Name": "Arnold", "Pet": "cat"}, "House 2": {"Name": "Peter", "Pet": "dog"}}
    assert "attributes ['name', 'pet']" in task.check_problem({**row, "gold": other})
    assert "no solution grid" in task.check_problem({**row, "gold": "tea"})
    with pytest.raises(ScpoError, match="houses must be 2..6"):
        task.check_problem({**row, "size": "7*2"})


def test_eval_metrics_cell_accuracy_no_answer_and_subsets():
    task = get_task("zebra", cell_votes=True)
    easy = {"id": "e", "prompt": PUZZLE, "gold": GOLD, "size": "2*2"}
    hard = {"id": "h", "prompt": PUZZLE, "gold": GOLD, "size": "4*4"}  # size decides the subset (ZeroEval)
    results, rows = [], []
    for problem, sampled, greedy in (
        (easy, [RIGHT, RIGHT, WRONG_CELL, "none"], RIGHT),
        (hard, [WRONG_CELL, WRONG_CELL, RIGHT, "none"], "none"),
    ):
        result, graded = grade_problem(problem, sampled, greedy, task)
        results.append(result)
        rows += graded
    m = summarize(results, rows, 4, task.partial_credit)
    assert m["greedy"]["mean"] == 0.5 and m["greedy_no_answer"]["mean"] == 0.5
    assert m["greedy_cell_accuracy"]["mean"] == 0.5  # 1.0 and no answer (0)
    assert m["cell_accuracy@1"]["mean"] == pytest.approx((2.75 / 4 + 2.5 / 4) / 2, abs=1e-4)
    assert m["maj@4"]["mean"] == 0.5 and m["maj@4_cell_accuracy"]["mean"] == pytest.approx((1 + 0.75) / 2)
    assert m["no_answer"]["mean"] == 0.25
    assert m["subsets"]["easy"]["greedy"]["mean"] == 1.0 and m["subsets"]["hard"]["greedy"]["mean"] == 0.0
    assert m["subsets"]["easy"]["problems"] == m["subsets"]["hard"]["problems"] == 1
    # Cell-wise votes: the hard puzzle's cells vote tea 1 : milk 2 in House 1, so the cell-wise grid is wrong.
    assert m["maj@4_by_cell"]["mean"] == 0.5


def test_subset_from_the_text_when_the_row_has_no_size(task):
    assert task.subset({"id": 1, "prompt": PUZZLE}) == "easy"
    four = PUZZLE.replace("There are 2 houses", "There are 4 houses").replace(
        "\n\n## Clues",
        "\n - Each person has a unique pet: `cat`\n - Each person has a unique hobby: `hiking`\n\n## Clues",
    )
    assert layout(four)[0] == 4
    assert task.subset({"id": 1, "prompt": four}) == "hard"  # 4*4


def test_eval_refuses_a_gold_grid_that_does_not_fit_before_sampling(tmp_path):
    from helpers import write_jsonl

    from scpo.stages import eval as eval_stage

    three = {**GOLD, "House 3": {"Name": "Eric", "Drink": "milk"}}
    path = write_jsonl(
        tmp_path / "eval.jsonl",
        [{"id": "ok", "prompt": PUZZLE, "gold": GOLD}, {"id": "bad", "prompt": PUZZLE, "gold": three}],
    )
    with pytest.raises(ScpoError, match=r"eval.jsonl:2: problem 'bad': its gold grid has houses"):
        eval_stage.main(
            [
                "--model",
                "embedded",
                "--task",
                "zebra",
                "--eval_file",
                str(path),
                "--eval_output",
                str(tmp_path / "out" / "eval.json"),
            ]
        )
    assert not (tmp_path / "out" / "eval.json").exists()  # refused before any generation


def test_report_shows_cell_accuracy_no_answer_and_the_subsets():
    from scpo.reporting.runs import answers_table

    task = get_task("zebra")
    result, rows = grade_problem(
        {"id": "e", "prompt": PUZZLE, "gold": GOLD, "size": "2*2"}, [RIGHT, "none"], RIGHT, task
    )
    metrics = summarize([result], rows, 2, task.partial_credit)
    lines = answers_table([{"iteration": 0, "eval": metrics}], 2)
    header, row = lines[3], lines[5]
    assert "greedy cell_accuracy" in header and "maj@2 cell_accuracy" in header and "easy greedy" in header
    assert row.startswith("| 0 | 0.000 ± 0.000 | 0.500 ± 0.000 | 1.000")  # greedy no answer, sampled no answer, cells
    assert answers_table([{"iteration": 0, "eval": {"k": 2, "greedy": {"mean": 1, "stderr": 0}}}], 2) == []


def test_cell_accuracy_is_micro_over_puzzles_of_different_sizes():
    """ZeroEval pools the cells: correct cells / all cells, not the mean of per-puzzle accuracies. A 2x2 puzzle with
    all 4 cells right and a 2x3 puzzle with 3 of 6 right: micro 7 / 10 = 0.7 (the per-puzzle mean would be 0.75)."""
    task = get_task("zebra")
    big_gold = {
        "House 1": {"Name": "Arnold", "Drink": "tea", "Pet": "cat"},
        "House 2": {"Name": "Peter", "Drink": "water", "Pet": "dog"},
    }
    big_answer = {
        "House 1": {"Name": "Arnold", "Drink": "water", "Pet": "dog"},
        "House 2": {"Name": "Peter", "Drink": "tea", "Pet": "dog"},
    }
    big = {
        "id": "b",
        "prompt": "a 2x3 puzzle",
        "gold": big_gold,
        "houses": 2,
        "columns": ["Name", "Drink", "Pet"],
        "size": "2*3",
    }
    small = {"id": "s", "prompt": PUZZLE, "gold": GOLD, "size": "2*2"}
    results, rows = [], []
    for problem, greedy in ((small, RIGHT), (big, json.dumps({"solution": big_answer}))):
        result, graded = grade_problem(problem, [], greedy, task)
        results.append(result)
        rows += graded
    m = summarize(results, rows, 0, task.partial_credit)
    assert [r["credit_units"] for r in results] == [4, 6]
    assert m["greedy_cell_accuracy"]["mean"] == pytest.approx(0.7)
    from scpo.metrics import ratio_and_stderr

    assert ratio_and_stderr([1.0, 0.5], [4, 6]) == (
        pytest.approx(0.7),
        pytest.approx(m["greedy_cell_accuracy"]["stderr"], abs=1e-4),
    )
    assert ratio_and_stderr([1.0, 0.0, 1.0], [1, 1, 1])[1] == pytest.approx(0.3333, abs=1e-4)  # = the plain SE


def test_zeroeval_strict_grading_on_zeroevals_parsing_rules():
    """grading: zeroeval reads answers as ZeroEval's extract_last_complete_json and zebra_grid_eval.py do; the
    tolerant reading (the default) differs exactly where ZeroEval is strict."""
    strict, tolerant = get_task("zebra", grading="zeroeval"), get_task("zebra")
    gold = {"header": ["House", "Name", "BookGenre"], "rows": [["1", "Arnold", "mystery"], ["2", "Peter", "romance"]]}
    g_strict, g_tolerant = strict.extract_gold(gold), tolerant.extract_gold(gold)
    answer = {
        "reasoning": "x",
        "solution": {
            "House 1": {"Name": "arnold ", "BookGenre": ["Mystery"]},
            "House 2": {"Name": "Peter", "BookGenre": "romance", "Pet": "cat"},
        },
    }
    text = json.dumps(answer)
    # cells compared after lower().strip(), a list by its first element, extra keys ignored: solved in both
    assert strict.equivalent(strict.extract(text), g_strict) and tolerant.equivalent(tolerant.extract(text), g_tolerant)
    # exact keys: "house 1" is not "House 1" for ZeroEval (half the cells), folded by the tolerant reading
    lower = text.replace("House 1", "house 1")
    assert (
        strict.score(strict.extract(lower), g_strict) == 0.5
        and tolerant.score(tolerant.extract(lower), g_tolerant) == 1
    )
    # the brace stack does not look inside strings: a "}" in the reasoning breaks ZeroEval's reading
    assert strict.extract(text.replace('"x"', '"a } b"')) is None and tolerant.extract(text.replace('"x"', '"a } b"'))
    # only the last complete object counts: an invalid one after a good answer means no answer (no fallback)
    assert strict.extract(text + ' {"solution": nope}') is None and tolerant.extract(text + ' {"solution": nope}')
    # an unfinished object after it does not replace the last complete one
    assert strict.extract(text + ' and {"solution": ') == strict.extract(text)
    # ZeroEval's own example: a complete object without "solution" is no answer
    assert strict.extract('{\n "reasoning": "($1.40 per pound x 4 pounds)",\n "answer": -21\n}') is None
    with pytest.raises(ScpoError, match="task_options.grading='exact': one of tolerant, zeroeval"):
        get_task("zebra", grading="exact")


def test_prompt_headers_come_from_the_gold_header():
    """Real ZebraLogic rows: "favorite book genres" is `BookGenre` in the gold, which no text guess gives."""
    task = get_task("zebra")
    gold = {"header": ["House", "Name", "BookGenre"], "rows": [["1", "Arnold", "mystery"], ["2", "Peter", "romance"]]}
    puzzle = (
        "There are 2 houses.\n - Each person has a unique name: `Arnold`, `Peter`\n"
        " - Each person has a unique favorite book genre: `mystery`, `romance`\n\n## Clues:\n1. x"
    )
    row = {"id": "z", "prompt": puzzle, "gold": gold}
    prompt = task.prompt_for(row)[0]["content"] if task.chat else task.prompt_for(row)
    assert '"BookGenre": "___"' in prompt
    assert task.check_problem(row) is None
