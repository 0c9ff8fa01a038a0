"""Row helpers every stage shares: the fields each file kind must have, problems loading, grouping by prompt.

Pure Python. A task is duck-typed here (anything with `prompt_for`), so this module imports no task.
"""

from __future__ import annotations

from scpo.core.errors import ScpoError
from scpo.core.io import read_rows

PROBLEM_FIELDS = {"id": (str, int), "prompt": (str, list)}
SAMPLE_FIELDS = {**PROBLEM_FIELDS, "completion": str}
EVAL_FIELDS = {**PROBLEM_FIELDS, "gold": (str, int, float, dict)}  # dict: a grid (zebra)


def load_problems(path: str, max_problems: int | None = None, task=None) -> list[dict]:
    """A problems file's rows (ids unique), the first `max_problems` of them; with a task, every row's gold must be
    one the task can grade (check_gold)."""
    rows = read_rows(path, required=PROBLEM_FIELDS)
    seen = set()
    for i, row in enumerate(rows, 1):
        if str(row["id"]) in seen:
            raise ScpoError(f"{path}:{i}: duplicate problem id {row['id']!r} (ids must be unique)")
        seen.add(str(row["id"]))
        for field in ("prompt", "messages"):
            if isinstance(row.get(field), list):
                check_chat(row[field], f"{path}:{i}: field {field!r}")
    rows = rows[:max_problems] if max_problems else rows
    if task is not None:
        check_gold(rows, task, path)
    return rows


def check_chat(messages: list, where: str) -> None:
    """Chat messages a chat template can render: each a mapping with a string `role` and `content`, named here
    rather than as a template error after the model has loaded."""
    for n, message in enumerate(messages, 1):
        if not isinstance(message, dict):
            raise ScpoError(f"{where}: message {n} is {type(message).__name__}, not a mapping with role and content")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                got = "missing" if key not in message else f"{type(message[key]).__name__}, not text"
                raise ScpoError(
                    f"{where}: message {n} has no text {key!r} ({got}); each message needs role and content"
                )


def check_gold(rows: list[dict], task, path: str) -> None:
    """Rows whose gold the task cannot grade (a zebra grid that does not fit its puzzle) are refused by every stage
    that reads gold, naming the file and problem; a row without gold is unlabeled and passes."""
    checked = set()
    for row in rows:
        if row.get("gold") is None or str(row["id"]) in checked:
            continue
        checked.add(str(row["id"]))
        why = task.check_problem(row)
        if why:
            raise ScpoError(f"{path}: problem {row['id']!r}: {why}")


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
            raise ScpoError(
                f"{path}:{line}: id {pid!r} ({type(pid).__name__}) and the id on line {id_type[key][0]} "
                f"({id_type[key][1].__name__}) read the same; use one type for ids"
            )
        id_type.setdefault(key, (line, type(pid)))
        if key in prompt_of and prompt_of[key][1] != row["prompt"]:
            raise ScpoError(
                f"{path}:{line}: prompt {pid!r} has another prompt text than on line {prompt_of[key][0]}; "
                "ids must name one prompt"
            )
        prompt_of.setdefault(key, (line, row["prompt"]))
        if "resampled" in row and row["resampled"] is not None and not isinstance(row["resampled"], bool):
            raise ScpoError(f"{path}:{line}: field 'resampled' must be true or false, got {row['resampled']!r}")
        if row.get("sample_index") is not None:
            where = (key, row["sample_index"], bool(row.get("teacher")))  # a vote teacher's rows count their own
            if where in first_seen:
                raise ScpoError(
                    f"{path}:{line}: prompt {pid!r} sample {row['sample_index']} is also on line "
                    f"{first_seen[where]}: duplicated rows would count twice in the votes"
                )
            first_seen[where] = line
    return [row for _, row in numbered]


def check_disjoint(dev_path: str, dev_setting: str, eval_path: str, eval_setting: str) -> None:
    """A file that chooses a model (dev_file, guard_file) shares no problem with the held-out eval file: no id and
    no prompt text (whitespace and case aside) in common. Files that do not exist yet are left to their stage."""
    from pathlib import Path

    if not (Path(dev_path).is_file() and Path(eval_path).is_file()):
        return
    held_out = read_rows(eval_path, required=PROBLEM_FIELDS)
    ids = {str(r["id"]) for r in held_out}
    texts = {" ".join(str(problem_text(r)).split()).lower() for r in held_out}
    for line, row in enumerate(read_rows(dev_path, required=PROBLEM_FIELDS), 1):
        same_text = " ".join(str(problem_text(row)).split()).lower() in texts
        if str(row["id"]) in ids or same_text:
            what = f"id {row['id']!r}" if str(row["id"]) in ids else "the prompt text of problem " + repr(row["id"])
            raise ScpoError(
                f"{dev_setting}={dev_path}:{line}: {what} is also in {eval_setting}={eval_path}; a file "
                "that chooses the model must not overlap the held-out eval (use a dev split: scpo data "
                "--split_preset, or data_tools.arithmetic --dev)"
            )
