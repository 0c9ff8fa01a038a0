"""Answer extraction and equivalence of the built-in tasks, on the real data sets and on unit cases."""

from __future__ import annotations

import re
import textwrap
from decimal import Decimal

import pytest
from helpers import data_file, read_jsonl

from scpo.core.errors import ScpoError
from scpo.tasks import GSM8K, Math, MultipleChoice, Numeric, Task, get_task

# One Math instance for the module: it caches math-verify parses and verdicts.
MATH = Math()


def _canonical(text: str) -> str:
    """Independent oracle: '1,000' -> '1000', '-3' -> '-3', '2.50' -> '2.5'."""
    value = Decimal(text.replace(",", "")).normalize()
    return "0" if value == 0 else format(value, "f")


# --------------------------------------------------------------------------- real data


def test_gsm8k_every_test_rationale_extracts_its_gold():
    rows = read_jsonl(data_file("gsm8k/test.jsonl"))
    assert len(rows) == 1319
    task = GSM8K()
    failures = []
    for i, row in enumerate(rows):
        want = _canonical(row["answer"].split("####")[-1].strip())
        got = task.extract(row["answer"])
        if got != want:
            failures.append((i, got, want, row["answer"][-60:]))
    assert not failures, f"{len(failures)}/1319 gold rationales mis-extracted: {failures[:20]}"


def test_math500_boxed_gold_is_equivalent_to_answer():
    rows = read_jsonl(data_file("math500/test.jsonl"))
    assert len(rows) == 500
    exceptions = []
    for row in rows:
        boxed = MATH.extract_gold(row["solution"])
        if boxed is None or not MATH.equivalent(boxed, row["answer"]):
            exceptions.append((row["unique_id"], boxed, row["answer"]))
    print(f"\nMATH-500: {500 - len(exceptions)}/500 boxed golds judged equivalent; exceptions ({len(exceptions)}):")
    for exc in exceptions:
        print("  ", exc)
    assert len(exceptions) <= 5, f"{len(exceptions)} exceptions (need >= 99% of 500): {exceptions}"


def test_math500_grader_is_not_trivially_true():
    """Each gold, compared with the next problem's gold, is (almost always) judged different."""
    rows = read_jsonl(data_file("math500/test.jsonl"))[:60]
    answers = [r["answer"] for r in rows]
    same = [(a, b) for a, b in zip(answers, answers[1:]) if MATH.equivalent(a, b)]
    # Identical neighbouring answers do occur (e.g. two problems answered '2'); mismatches must dominate.
    assert len(same) <= 6, same


@pytest.mark.parametrize(
    "relative, field",
    [
        ("svamp/test.jsonl", "Answer"),
        ("mawps/singleop.jsonl", "target"),
        ("mawps/addsub.jsonl", "target"),
        ("mawps/multiarith.jsonl", "target"),
    ],
)
def test_numeric_float_golds_match_integer_completions(relative, field):
    rows = read_jsonl(data_file(relative))
    assert rows
    task = Numeric()
    integral, failures = 0, []
    for i, row in enumerate(rows):
        gold = row[field]
        gold_answer = task.extract_gold(gold)
        # An integral gold (145.0) is said as '145'; a decimal one (7.5) as written.
        spoken = str(int(gold)) if float(gold).is_integer() else str(gold)
        integral += float(gold).is_integer()
        said = task.extract(f"First I add, then I divide, so the answer is {spoken}.")
        other = task.extract(f"so the answer is {2 * float(gold) + 1:.4f}.")  # a clearly different value
        if said != spoken or not task.equivalent(gold_answer, said) or not task.equivalent(str(gold), said):
            failures.append((i, gold, gold_answer, said, "same value judged different"))
        if task.equivalent(gold_answer, other) or task.equivalent(str(gold), other):
            failures.append((i, gold, gold_answer, other, "different value judged equivalent"))
    assert integral > 0.5 * len(rows)
    assert not failures, f"{len(failures)} failures: {failures[:10]}"


def test_numeric_off_by_one_large_integers_are_different():
    rows = read_jsonl(data_file("svamp/test.jsonl"))
    task = Numeric()
    wrong = [
        (i, row["Answer"])
        for i, row in enumerate(rows)
        if task.equivalent(task.extract_gold(row["Answer"]), str(int(row["Answer"]) + 1))
    ]
    assert not wrong, f"off-by-one answers judged equivalent to the gold: {wrong}"


# --------------------------------------------------------------------------- gsm8k units


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("So in total she pays a lot. The answer is $1,000.", "1000"),
        ("She sells 9 eggs at $2 each.\n#### 18", "18"),
        ("9 eggs at 2 dollars each, so she makes 18 dollars", "18"),
        ("Counting them all, answer: 42 apples", "42"),
        ("The temperature falls 8 degrees from 3. The answer is -5.", "-5"),
        ("It ends at -12 after the drop", "-12"),
        ("#### -7", "-7"),
        ("The answer is 1,234,567.", "1234567"),
        ("The answer is \\boxed{12}.", "12"),
        ("The answer is 3.50.", "3.5"),
        ("First 4, then 5, so the answer is 7 apples and 3 pears", "7"),
        # An answer sentence that states a computation gives its result, not its first operand (issue 30, point 8).
        ("The answer is 12 - 4 = 8.", "8"),
        ("The answer is 3 x 5 = 15 apples.", "15"),
        ("The answer is 10 + 2 = $12.", "12"),
        ("So 2 = 2. The answer is 5. Then x = 7", "5"),  # an "=" in a later sentence is not the answer's
        ("I am not sure how to solve this problem.", None),
        ("", None),
    ],
)
def test_gsm8k_extract(completion, expected):
    assert GSM8K().extract(completion) == expected


def test_gsm8k_answer_keys_are_canonical_numbers():
    task = GSM8K()
    assert task.answer_key("1,000") == task.answer_key("1000.0") == "1000"
    assert task.answer_key("18") != task.answer_key("81")


def test_gsm8k_markdown_headers_do_not_beat_the_answer_line():
    completion = "#### Step 1: eggs left\n16 - 3 - 4 = 9\n#### Step 2: money\n9 * 2 = 18\nThe answer is 18."
    assert GSM8K().extract(completion) == "18"


# --------------------------------------------------------------------------- math units


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("So the value is $\\boxed{\\frac{1}{\\sqrt{2}}}$.", "\\frac{1}{\\sqrt{2}}"),
        ("First \\boxed{1}, corrected: \\boxed{2}, finally \\boxed{\\{3, 4\\}}", "\\{3, 4\\}"),
        ("Both: \\boxed{a} then \\boxed{b}", "b"),
        ("The answer was cut off: \\boxed{\\frac{1}{2", None),
        ("Therefore $\\boxed 5$", "5"),
        ("Hence \\fbox{7}", "7"),
        ("No boxed here. The answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("No answer at all", None),
    ],
)
def test_math_extract(completion, expected):
    assert Math().extract(completion) == expected


def test_math_extract_gold_takes_last_boxed_of_solution():
    solution = "We get $x = \\boxed{3}$ at first, but in fact $\\boxed{\\dfrac{14}{3}}$."
    assert Math().extract_gold(solution) == "\\dfrac{14}{3}"
    assert Math().extract_gold("  \\frac{1}{2} ") == "\\frac{1}{2}"  # a plain answer field is kept as is


@pytest.mark.parametrize(
    "a, b",
    [
        ("\\dfrac{1}{2}", "0.5"),
        ("\\dfrac{1}{2}", "\\frac12"),
        ("\\frac{1}{2}", "1/2"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("\\text{Evelyn}", "Evelyn"),
        ("6 - 5i", "6-5i"),
        ("90^\\circ", "90"),
        ("$\\frac{14}{3}$", "\\frac{14}{3}"),
    ],
)
def test_math_equivalent(a, b):
    assert MATH.equivalent(a, b)
    assert MATH.equivalent(b, a)


@pytest.mark.parametrize(
    "a, b",
    [
        ("\\frac{1}{2}", "2"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi)"),
        ("0.5", "0.25"),
        ("\\sqrt{2}", "2"),
    ],
)
def test_math_not_equivalent(a, b):
    assert not MATH.equivalent(a, b)


def test_math_cut_off_boxed_after_answer_is_gives_none():
    assert Math().extract("The answer is $\\boxed{\\frac{1") is None


# --------------------------------------------------------------------------- numeric units


@pytest.mark.parametrize("a, b", [("145", "145.0"), ("0.5", "1/2"), ("1,000", "1000"), ("-3", "-3.00")])
def test_numeric_equivalent(a, b):
    assert Numeric().equivalent(a, b)


@pytest.mark.parametrize("a, b", [("145", "146"), ("0.5", "0.6"), ("-3", "3")])
def test_numeric_not_equivalent(a, b):
    assert not Numeric().equivalent(a, b)


def test_numeric_tolerance_between_canonical_values():
    task = Numeric()
    assert task.equivalent("1000", "1000.0000001")  # relative 1e-10
    assert not task.equivalent("1000", "1000.1")


def test_numeric_extract_gold_accepts_floats():
    assert Numeric().extract_gold(145.0) == "145"
    assert Numeric().extract_gold("2.50") == "2.5"


def test_numeric_tolerance_on_fractions_and_commas():
    assert Numeric().equivalent("0.3333333", "1/3")
    assert Numeric().equivalent("1,000", "1000.0000001")


# --------------------------------------------------------------------------- multiple choice units


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("Let me think. The answer is (C)", "C"),
        ("Answer: b", "B"),
        ("Therefore \\boxed{D}", "D"),
        ("Between (A) and (B) I pick (B).", "B"),
        ("I cannot decide between these options.", None),
        ("", None),
    ],
)
def test_multiple_choice_extract(completion, expected):
    assert MultipleChoice().extract(completion) == expected


def test_multiple_choice_rejects_letters_beyond_num_choices():
    four = MultipleChoice(num_choices=4)
    assert four.extract("The answer is (E)") is None
    assert four.extract("\\boxed{E}") is None
    assert four.extract("Answer: e") is None
    assert four.extract("The answer is (D)") == "D"
    assert MultipleChoice(num_choices=3).extract("The answer is (D)") is None
    assert MultipleChoice().extract("The answer is (F)") is None  # default A-E


def test_multiple_choice_gold_letter():
    assert MultipleChoice().extract_gold(" c ") == "C"
    assert MultipleChoice(num_choices=2).extract_gold("C") is None


def test_multiple_choice_article_a_is_not_a_choice():
    assert MultipleChoice().extract("The answer is a bit subtle; the correct choice is (C).") == "C"


# --------------------------------------------------------------------------- get_task


def test_get_task_builtin_and_options():
    assert isinstance(get_task("gsm8k"), GSM8K)
    mc = get_task("multiple_choice", num_choices=3)
    assert isinstance(mc, MultipleChoice) and mc.num_choices == 3
    assert get_task("math", timeout_seconds=None).timeout_seconds == 5  # None means "the default"


def test_get_task_dotted_path_to_user_task(tmp_path, monkeypatch):
    (tmp_path / "my_scpo_tasks.py").write_text(
        textwrap.dedent("""
        from dataclasses import dataclass
        from scpo.tasks import Task

        @dataclass
        class Yes(Task):
            name: str = "yesno"
            strict: bool = False

            def extract(self, completion):
                words = completion.lower().split()
                return words[-1] if words and words[-1] in ("yes", "no") else None

        NOT_A_TASK = object
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for path in ("my_scpo_tasks:Yes", "my_scpo_tasks.Yes"):
        task = get_task(path, strict=True)
        assert isinstance(task, Task) and type(task).__name__ == "Yes"
        assert task.strict is True
        assert task.extract("I think yes") == "yes" and task.extract("maybe") is None
    with pytest.raises(ScpoError, match="has no option"):
        get_task("my_scpo_tasks:Yes", num_choices=3)
    with pytest.raises(ScpoError, match="not a subclass"):
        get_task("my_scpo_tasks:NOT_A_TASK")
    with pytest.raises(ScpoError, match="cannot import"):
        get_task("my_scpo_tasks:Missing")
    with pytest.raises(ScpoError, match="cannot import"):
        get_task("no_such_module_xyz:Task")


def test_get_task_unknown_name():
    with pytest.raises(ScpoError, match=re.escape("unknown task 'gsm9k'")) as info:
        get_task("gsm9k")
    assert "gsm8k" in str(info.value)  # lists the built-in names


def test_get_task_unknown_option():
    with pytest.raises(ScpoError, match="num_choice") as info:
        get_task("multiple_choice", num_choice=4)
    assert "num_choices" in str(info.value)  # names the options it does have
