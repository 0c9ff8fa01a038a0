"""Row helpers every stage shares: the fields each file kind must have, problems loading, grouping by prompt.

Pure Python. A task is duck-typed here (anything with `build_messages`), so this module imports no task.
"""

from __future__ import annotations

from scpo.core.errors import ScpoError
from scpo.core.io import read_rows

PROBLEM_FIELDS = {"id": (str, int), "prompt": (str, list)}
SAMPLE_FIELDS = {**PROBLEM_FIELDS, "completion": str}
EVAL_FIELDS = {**PROBLEM_FIELDS, "gold": (str, int, float)}


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


def messages_of(row: dict, task) -> list[dict]:
    """The chat a row is (or was) sampled with: its `messages`, a chat prompt as it is, or the task's wording."""
    if row.get("messages"):
        return row["messages"]
    if isinstance(row["prompt"], list):
        return row["prompt"]
    return task.build_messages(row["prompt"])


def problem_text(problem: dict) -> str:
    """A problem's text: the prompt, or the last user turn of a chat prompt."""
    prompt = problem["prompt"]
    if isinstance(prompt, list):
        return next((m["content"] for m in reversed(prompt) if m.get("role") == "user"), "")
    return prompt
