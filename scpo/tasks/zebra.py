"""ZebraLogic grid puzzles (ScPO §3, Appendix D; grading as ZeroEval's `zebra_grid_eval.py`).

Prompt: ZeroEval's one-shot template (`src/templates/ZEBRA_GRID.py`, the prompt ScPO Appendix D shows): an
example puzzle with its JSON answer, the puzzle, and a JSON template `{"reasoning": "___", "solution":
{"House 1": {"Name": "___", ...}, ...}}` whose houses and headers come from the problem row (`houses`,
`columns`: the headers, or each header with its values) or, for a puzzle text alone (a model-written puzzle), from its "There are N houses" line and its
list of characteristics.

Answer: the `solution` object of the last complete JSON object in the completion (ZeroEval's
`extract_last_complete_json`); code fences and prose around it do not matter, and when no object is
complete (a missing closing brace) the unfinished last one is read by json_repair, a parser made for broken
LLM JSON. Cells are normalised: house keys by their number ("house 1", "House1", "1"), headers and values
case- and whitespace-folded, a list-wrapped value read as its first element (ZeroEval does the same). The
answer is that normalised grid as canonical JSON text, so equal grids have equal keys: ScPO's rule that only
exactly matching solutions share a vote (Appendix B). Choice beyond ZeroEval: house and header keys are
compared case-insensitively too (ZeroEval looks them up exactly).

Metrics (ZeroEval): puzzle accuracy (every gold cell right), cell accuracy (right gold cells / gold cells,
no answer = 0), no-answer rate, and easy / hard puzzles: easy = 2*2..2*6, 3*2, 3*3.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass

import json_repair

from scpo.core.errors import ScpoError
from scpo.tasks._base import Task
from scpo.tasks._zebra_puzzles import ATTRIBUTES, generate, parse_size, puzzle_text

# ZeroEval src/templates/ZEBRA_GRID.py, verbatim (the trailing spaces after "Puzzle" included).
ZEBRA_GRID = """
# Example Puzzle 

There are 3 houses, numbered 1 to 3 from left to right, as seen from across the street. Each house is occupied by a different person. Each house has a unique attribute for each of the following characteristics:
 - Each person has a unique name: `Peter`, `Eric`, `Arnold`.
 - Each person has a unique favorite drink: `tea`, `water`, `milk`

## Clues for the Example Puzzle

1. Peter is in the second house.
2. Arnold is directly left of the one who only drinks water.
3. The one who only drinks water is directly left of the person who likes milk.

## Answer to the Example Puzzle

{
    "reasoning": "Given Clue 1, we know Peter is in House 2. According to Clue 2, Arnold is directly left of the one who only drinks water. The person in House 3 cannot be on the left of anyone, so Arnold must be in House 1. Thus, Peter drinks water, and Eric lives in House 3. Then, according to Clue 3, Eric drinks milk. Therefore, Arnold drinks tea.",
    "solution": {
        "House 1": {
            "Name": "Arnold",
            "Drink": "tea"
        },
        "House 2": {
            "Name": "Peter",
            "Drink": "water"
        },
        "House 3": {
            "Name": "Eric",
            "Drink": "milk"
        }
    }
}

# Puzzle to Solve 

{puzzle}


# Instruction

Now please solve the above puzzle. Present your reasoning and solution in the following json format:

{json_template}

"""

EASY_SIZES = ("2*2", "2*3", "2*4", "2*5", "2*6", "3*2", "3*3")  # ZeroEval zebra_grid_eval.py

_HOUSES = re.compile(r"There are (\d+) houses")
_CHARACTERISTIC = re.compile(r"^\s*-\s*(.+?):\s*`", re.MULTILINE)
_HOUSE_KEY = re.compile(r"\d+")
_PHRASE_TO_HEADER = {phrase.lower(): header for header, (phrase, _, _) in ATTRIBUTES.items()}


def _fold(text) -> str:
    return " ".join(str(text).lower().split())


def _header_key(text) -> str:
    return re.sub(r"[\W_]+", "", str(text).lower())


def normalize_grid(solution) -> dict[str, dict[str, str]] | None:
    """{"1": {"drink": "tea", ...}, ...}: house numbers, folded headers and cells; None when it is no grid."""
    if not isinstance(solution, dict):
        return None
    grid: dict[str, dict[str, str]] = {}
    for house, cells in solution.items():
        number = _HOUSE_KEY.search(str(house))
        if number is None or not isinstance(cells, dict):
            continue
        row = {}
        for header, value in cells.items():
            if isinstance(value, list):  # ZeroEval reads a list-wrapped cell as its first element
                value = value[0] if value else None
            if value is None or isinstance(value, dict):
                continue
            value = _fold(value)
            if value and value != "___":
                row[_header_key(header)] = value
        grid[str(int(number.group()))] = row
    return grid if any(grid.values()) else None


def _objects(text: str) -> tuple[list[str], str | None]:
    """The complete top-level {...} spans in order (braces inside JSON strings ignored), and an unfinished last one."""
    spans, depth, start, in_string, escaped = [], 0, None, False, False
    for i, c in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
            continue
        if c == '"' and depth:
            in_string = True
        elif c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans, (text[start:] if depth else None)


# Any text a model writes is an answer or "no answer", in linear time: a solution grid is 3 levels deep and a few
# KB long, so deeper or longer spans are not parsed (json recurses once per level; json_repair is quadratic on
# long unterminated text: 0.29 s at 100 KB, 3.4 s at 400 KB).
MAX_NESTING = 32
MAX_REPAIR_CHARS = 32_000


def _nesting(span: str) -> int:
    depth = deepest = 0
    for c in span:
        if c in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "}]" and depth:
            depth -= 1
    return deepest


def _parse(span: str):
    if _nesting(span) > MAX_NESTING:
        return None
    try:
        return json.loads(span)
    except (ValueError, RecursionError):
        if not _HOUSE_KEY.search(span) or "house" not in span.lower() or len(span) > MAX_REPAIR_CHARS:
            return None  # no grid in it, or too long to be one: not worth a repair (slow on junk)
        try:
            return json_repair.loads(span)
        except Exception:  # the repairer gives up on some text: then there is no answer in it
            return None


def _solution_of(obj):
    if isinstance(obj, dict):
        if isinstance(obj.get("solution"), (dict, str)):
            inner = obj["solution"]
            return _parse(inner) if isinstance(inner, str) else inner
        if any(_HOUSE_KEY.search(str(k)) and isinstance(v, dict) for k, v in obj.items()):
            return obj  # the grid itself, without the "solution" wrapper
    return None


def last_solution(text: str):
    """The solution grid of the last JSON object that has one; an unfinished trailing object comes last."""
    spans, unfinished = _objects(text)
    for span in ([unfinished] if unfinished else []) + spans[::-1]:
        grid = normalize_grid(_solution_of(_parse(span)))
        if grid:
            return grid
    return None


def _canonical(grid: dict) -> str:
    return json.dumps(grid, sort_keys=True, ensure_ascii=False)


def votes_per_cell(answers: list[str | None]) -> tuple[str | None, dict[tuple[str, str], float]]:
    """Votes per cell, for analysis: the grid of each cell's most common value (ties: the smallest value) and
    each cell's vote share. Answers are the task's canonical grids; None (no answer) votes for no cell."""
    grids = [json.loads(a) for a in answers if a]
    if not grids:
        return None, {}
    counts: dict[tuple[str, str], Counter] = {}
    for grid in grids:
        for house, row in grid.items():
            for header, value in row.items():
                counts.setdefault((house, header), Counter())[value] += 1
    majority: dict[str, dict[str, str]] = {}
    shares = {}
    for (house, header), c in counts.items():
        value = min(c, key=lambda v: (-c[v], v))
        majority.setdefault(house, {})[header] = value
        shares[(house, header)] = c[value] / len(answers)
    return _canonical(majority), shares


GRADINGS = ("tolerant", "zeroeval")


def zeroeval_last_json(text: str):
    """ZeroEval's `extract_last_complete_json` (src/evaluation/eval_utils.py), as it is: a brace stack that does not
    look inside strings, the last top-level {...} span that closes, parsed after removing newlines; None when that
    span does not parse (no repair, no earlier object). Bounded in nesting like scpo's own reading."""
    stack, start, last = 0, None, None
    for i, c in enumerate(text):
        if c == "{":
            stack += 1
            if start is None:
                start = i
        elif c == "}" and stack:
            stack -= 1
            if not stack:
                last, start = text[start : i + 1], None
    if last is None or _nesting(last) > MAX_NESTING:
        return None
    try:
        return json.loads(last.replace("\n", ""))
    except (ValueError, RecursionError):
        return None


def zeroeval_grid(solution) -> dict[str, dict[str, str]] | None:
    """A solution as ZeroEval grades it: exact house and column keys, each cell lower().strip() (a list: its first
    element); empty or null cells, and cells that are no text, are left out (ZeroEval skips or rejects them)."""
    if not isinstance(solution, dict):
        return None
    grid: dict[str, dict[str, str]] = {}
    for house, cells in solution.items():
        if not isinstance(cells, dict):
            continue
        row = {}
        for column, value in cells.items():
            if isinstance(value, list):
                value = value[0] if value else None
            if isinstance(value, str) and value:
                row[str(column)] = value.lower().strip()
        grid[str(house)] = row
    return grid if any(grid.values()) else None


@dataclass
class Zebra(Task):
    name: str = "zebra"
    prompt_template: str | None = ZEBRA_GRID  # {puzzle} and {json_template} are filled per problem
    keys_are_exact: bool = True  # ScPO: only exactly matching solutions share a vote
    truncated_completions_vote: bool = False
    partial_credit: str | None = "cell_accuracy"
    cell_votes: bool = False  # also grade each cell's majority value across the k samples (eval, for analysis)
    reasoning_field: bool = (
        True  # the answer template asks for "reasoning" before "solution" (ZeroEval); false: solution only
    )
    grading: str = "tolerant"  # tolerant: scpo's reading (any complete or repaired object with a solution, folded keys)
    # | zeroeval: ZeroEval's zebra_grid_eval.py exactly (the last complete object only, no repair, exact keys)

    def __post_init__(self):
        if self.grading not in GRADINGS:
            raise ScpoError(f"setting task_options.grading={self.grading!r}: one of {', '.join(GRADINGS)}")

    # --- prompt ---------------------------------------------------------------------------------------
    def prompt_for(self, row: dict):
        if isinstance(row.get("prompt"), list):
            return row["prompt"]
        houses, columns = layout_of(row)
        return self._prompt(row["prompt"], houses, columns)

    def build_prompt(self, problem: str):
        return self._prompt(problem, None, None)

    def _prompt(self, puzzle: str, houses, columns):
        if houses is None or columns is None:
            houses, columns = layout(puzzle)
        grid = {f"House {h + 1}": {c: "___" for c in columns} for h in range(int(houses))}
        template = {"reasoning": "___", "solution": grid} if self.reasoning_field else {"solution": grid}
        content = (
            (self.prompt_template or ZEBRA_GRID)
            .replace("{puzzle}", puzzle)
            .replace("{json_template}", json.dumps(template, indent=4))
        )
        if not self.chat:
            return content
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return messages + [{"role": "user", "content": content}]

    # --- answers --------------------------------------------------------------------------------------
    def extract(self, completion: str) -> str | None:
        if self.grading == "zeroeval":
            found = zeroeval_last_json(completion)
            grid = zeroeval_grid(found.get("solution")) if isinstance(found, dict) else None
        else:
            grid = last_solution(completion)
        return None if grid is None else _canonical(grid)

    def extract_gold(self, gold) -> str | None:
        """A grid object, its JSON text, or ZebraLogic's {"header": [...], "rows": [[...]]}."""
        if isinstance(gold, str):
            if _nesting(gold) > MAX_NESTING:
                return None
            try:
                gold = json.loads(gold)
            except ValueError:
                return self.extract(gold)
        if isinstance(gold, dict) and "header" in gold and "rows" in gold:
            header = gold["header"]
            gold = {f"House {i + 1}": dict(zip(header[1:], row[1:])) for i, row in enumerate(gold["rows"])}
        solution = gold.get("solution", gold) if isinstance(gold, dict) else None
        grid = zeroeval_grid(solution) if self.grading == "zeroeval" else normalize_grid(solution)
        return None if grid is None else _canonical(grid)

    def answer_key(self, answer: str) -> Hashable:
        return answer

    def cell_majority(self, answers: list[str | None]) -> str | None:
        """The grid of each cell's most common value across the answers (`cell_votes`, for analysis)."""
        return votes_per_cell(answers)[0]

    def equivalent(self, a: str, b: str) -> bool:
        """Solved: every gold cell right; cells the gold does not have are ignored (ZeroEval's puzzle accuracy)."""
        return a == b or (a is not None and self.score(a, b) == 1.0)

    def credit_units(self, gold: str) -> int:
        return sum(len(row) for row in json.loads(gold).values())

    def score(self, answer: str | None, gold: str) -> float:
        """Cell accuracy: the gold cells the answer has right, over the gold cells (ZeroEval; over a set of puzzles
        the cells are pooled, micro: `credit_units`)."""
        truth = json.loads(gold)
        total = sum(len(row) for row in truth.values())
        if answer is None or not total:
            return 0.0
        guess = json.loads(answer)
        right = sum(guess.get(h, {}).get(c) == v for h, row in truth.items() for c, v in row.items())
        return right / total

    def subset(self, problem: dict) -> str | None:
        """'easy' or 'hard' by the puzzle size (ZeroEval), from the row's `size` or the puzzle text."""
        size = problem.get("size")
        if size is None:
            houses, columns = layout(problem["prompt"] if isinstance(problem["prompt"], str) else "")
            size = f"{houses}*{len(columns)}"
        houses, attributes = (int(x) for x in str(size).lower().replace("x", "*").split("*"))
        return "easy" if f"{houses}*{attributes}" in EASY_SIZES else "hard"

    def new_problems(self, count: int, sizes: str, seed: str, taken: set[str]) -> list[dict]:
        """Fresh puzzles of the sizes in turn (scpo generate-problems, generation_source: generator), none in `taken`."""
        size_list = [parse_size(x) for x in str(sizes).split(",") if x.strip()]
        rows = []
        for i in range(count):
            houses, attributes = size_list[i % len(size_list)]
            for attempt in range(1000):
                puzzle = generate(houses, attributes, random.Random(f"{seed}:{i}:{attempt}"))
                if puzzle_text(puzzle) not in taken:
                    break
            taken.add(puzzle_text(puzzle))
            rows.append(
                {
                    "prompt": puzzle_text(puzzle),
                    "gold": puzzle.gold(),
                    "size": puzzle.size,
                    "houses": houses,
                    "columns": {a: list(v) for a, v in puzzle.columns.items()},
                    "clues": [c.as_row() for c in puzzle.clues],
                }
            )
        return rows

    def check_problem(self, problem: dict) -> str | None:
        """Why a row cannot be graded (its gold grid does not fit the puzzle's houses and headers), or None."""
        if self.grading != "tolerant":  # the fit is checked on folded keys whatever the grading
            return dataclasses.replace(self, grading="tolerant").check_problem(problem)
        gold = self.extract_gold(problem.get("gold"))
        if gold is None:
            return "its gold is no solution grid"
        houses, columns = layout_of(problem)
        if problem.get("size") is not None:
            parse_size(problem["size"])
        grid = json.loads(gold)
        want_houses = {str(h + 1) for h in range(int(houses))}
        if set(grid) != want_houses:
            return f"its gold grid has houses {sorted(grid, key=int)}, the puzzle has {sorted(want_houses, key=int)}"
        want = sorted(_header_key(c) for c in columns)
        for house, row in grid.items():
            if sorted(row) != want:
                return f"its gold grid's House {house} has attributes {sorted(row)}, the puzzle has {want}"
        return None


def layout_of(row: dict) -> tuple[int, list[str]]:
    """A row's (houses, headers): its own `houses` / `columns`, else its gold's ZebraLogic `header` and `rows` (the
    real headers: "favorite book genres" is `BookGenre`, which no guess from the text gives), else the text's."""
    houses, columns = row.get("houses"), row.get("columns")
    gold = row.get("gold")
    if (houses is None or columns is None) and isinstance(gold, dict) and "header" in gold and "rows" in gold:
        return len(gold["rows"]), list(gold["header"][1:])
    if houses is None or columns is None:
        return layout(row["prompt"] if isinstance(row["prompt"], str) else "")
    return houses, columns


def layout(puzzle: str) -> tuple[int, list[str]]:
    """(houses, headers) read from a puzzle's text: "There are N houses" and its "- <phrase>: `a`, `b`" lines.
    A phrase of the generator's vocabulary gives its header; another phrase gives its last word, capitalised."""
    m = _HOUSES.search(puzzle)
    if m is None:
        raise ScpoError("zebra puzzle text has no 'There are N houses' line: give the row `houses` and `columns`")
    headers = []
    for phrase in _CHARACTERISTIC.findall(puzzle):
        header = _PHRASE_TO_HEADER.get(phrase.strip().lower()) or phrase.split()[-1].capitalize()
        headers.append(header)
    if not headers:
        raise ScpoError(
            "zebra puzzle text lists no characteristics (' - <phrase>: `value`, ...'): give the row "
            "`houses` and `columns`"
        )
    return int(m.group(1)), headers
