"""Row helpers every stage shares: the fields each file kind must have, problems loading, grouping by prompt.

Pure Python. A task is duck-typed here (anything with `prompt_for`), so this module imports no task.
"""

from __future__ import annotations

from scpo.core.errors import ScpoError
from scpo.core.io import read_rows

PROBLEM_FIELDS = {"id": (str, int), "prompt": (str, list)}
SAMPLE_FIELDS = {**PROBLEM_FIELDS, "completion": str}
EVAL_FIELDS = {**PROBLEM_FIELDS, "gold": (str, int, float, dict)}  # dict: a grid (zebra)


def load_problems(path: str, max_problems: int | None = None) -> list[dict]:
    """A problems file's rows (ids unique), the first `max_problems` of them."""
    rows = read_rows(path, required=PROBLEM_FIELDS)
    seen = set()
    for i, row in enumerate(rows, 1):
        if str(row["id"]) in seen:
            raise ScpoError(f"{path}:{i}: duplicate problem id {row['id']!r} (ids must be unique)")
        seen.add(str(row["id"]))
    return rows[:max_problems] if max_problems else rows


def group_by_prompt(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows by prompt id, in first-seen order."""
    by_id: dict[str, list[dict]] = {}
    for row in rows:
        by_id.setdefault(str(row["id"]), []).append(row)
    return by_id


def prompt_of(row: dict, task) -> list[dict] | str:
    """What a row is (or was) sampled with: its `messages` (chat messages, or the plain text of a task without a
    chat template), a chat prompt as it is, or the task's prompt for the problem."""
    if row.get("messages"):
        return row["messages"]
    if isinstance(row["prompt"], list):
        return row["prompt"]
    return task.prompt_for(row)


def problem_text(problem: dict) -> str:
    """A problem's text: the prompt, or the last user turn of a chat prompt."""
    prompt = problem["prompt"]
    if isinstance(prompt, list):
        return next((m["content"] for m in reversed(prompt) if m.get("role") == "user"), "")
    return prompt


def check_sample_rows(numbered: list[tuple[int, dict]], path) -> list[dict]:
    """The rows of a samples or labels file, refused with the file and lines when they would corrupt the votes:
    a (prompt id, sample_index) given twice (a file concatenated twice inflates k), ids 1 and "1" (they would
    merge into one prompt), one id with two different prompts, a `resampled` that is not true/false."""
    first_seen: dict[tuple, int] = {}
    prompt_of: dict[str, tuple[int, object]] = {}
    id_type: dict[str, tuple[int, type]] = {}
    for line, row in numbered:
        pid = row["id"]
        key = str(pid)
        if key in id_type and id_type[key][1] is not type(pid):
            raise ScpoError(f"{path}:{line}: id {pid!r} ({type(pid).__name__}) and the id on line {id_type[key][0]} "
                            f"({id_type[key][1].__name__}) read the same; use one type for ids")
        id_type.setdefault(key, (line, type(pid)))
        if key in prompt_of and prompt_of[key][1] != row["prompt"]:
            raise ScpoError(f"{path}:{line}: prompt {pid!r} has another prompt text than on line {prompt_of[key][0]}; "
                            "ids must name one prompt")
        prompt_of.setdefault(key, (line, row["prompt"]))
        if "resampled" in row and row["resampled"] is not None and not isinstance(row["resampled"], bool):
            raise ScpoError(f"{path}:{line}: field 'resampled' must be true or false, got {row['resampled']!r}")
        if row.get("sample_index") is not None:
            where = (key, row["sample_index"], bool(row.get("teacher")))  # a vote teacher's rows count their own
            if where in first_seen:
                raise ScpoError(f"{path}:{line}: prompt {pid!r} sample {row['sample_index']} is also on line "
                                f"{first_seen[where]}: duplicated rows would count twice in the votes")
            first_seen[where] = line
    return [row for _, row in numbered]
