"""MATH-style LaTeX answers: the last \\boxed{} (nested braces), judged by the math-verify grader.

math-verify is slow (sympy), so it only ever sees distinct canonical keys, each parsed once
(cached), and each pair of keys compared once (cached), under a time limit.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field

from scpo.tasks._base import Task
from scpo.tasks._numbers import canonical_number

ANSWER_IS = re.compile(r"answer is", re.IGNORECASE)
MAX_ANSWER_LINE = 512  # characters after "answer is" that can hold an answer on its line
_SPACES = re.compile(r"\\[,;:! ]|\s+")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")


def last_boxed(text: str) -> str | None:
    """Contents of the last \\boxed{...} or \\fbox{...}, with nested braces; None if there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = start + (6 if text.startswith("\\boxed", start) else 5)
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] != "{":  # "\boxed 5" form
        m = re.match(r"[^\s$]+", text[i:])
        return m.group(0) if m else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None  # unbalanced: the answer was cut off


def answer_is(text: str) -> str | None:
    """The last "answer is X" whose X fills the rest of its line: "The answer is $\\frac{1}{2}$." -> "\\frac{1}{2}".

    After "answer is": colons and whitespace, an optional "$", then X (no "$" inside), then an optional
    "$", spaces and one ".", up to the end of the line. Plain string scanning, linear in the text: each
    candidate looks at most MAX_ANSWER_LINE characters of its line, and the whitespace it skips ends
    before the next candidate.
    """
    starts = [m.end() for m in ANSWER_IS.finditer(text)]
    for n, i in reversed(list(enumerate(starts))):
        limit = starts[n + 1] if n + 1 < len(starts) else len(text)
        while i < limit and (text[i] == ":" or text[i].isspace()):
            i += 1
        if i < len(text) and text[i] == "$":
            i += 1
        end = text.find("\n", i, i + MAX_ANSWER_LINE + 1)
        if end < 0:
            if len(text) - i > MAX_ANSWER_LINE:
                continue
            end = len(text)
        line = text[i:end].rstrip()
        line = line[:-1].rstrip() if line.endswith(".") else line
        line = line[:-1] if line.endswith("$") else line
        answer = line.strip()
        if answer and "$" not in answer:
            return answer
    return None


def normalize_latex(answer: str) -> str:
    """A cheap canonical form: equal forms are equivalent without asking the grader."""
    s = answer.strip().strip("$").strip()
    s = s.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\%", "").replace("%", "")
    s = _TEXT_WRAP.sub(r"\1", s)
    s = _SPACES.sub("", s).rstrip(".")
    number = canonical_number(s)
    return number if number is not None else s


@dataclass
class Math(Task):
    name: str = "math"
    instruction: str = "Solve the problem step by step. Put your final answer within \\boxed{}."
    timeout_seconds: int = 5
    _parsed: dict = field(default_factory=dict, repr=False)
    _verdicts: dict = field(default_factory=dict, repr=False)

    def extract(self, completion: str) -> str | None:
        boxed = last_boxed(completion)
        if boxed is not None:
            return boxed.strip() or None
        if "\\boxed" in completion or "\\fbox" in completion:
            return None  # a box that never closes: the answer was cut off
        return answer_is(completion)

    def extract_gold(self, gold) -> str | None:
        gold = str(gold)
        boxed = last_boxed(gold)
        return (boxed if boxed is not None else gold).strip() or None

    def answer_key(self, answer: str) -> Hashable:
        return normalize_latex(answer)

    def _time_limit(self) -> int | None:
        # math-verify's limit is signal.alarm, which only the main thread may set.
        return self.timeout_seconds if threading.current_thread() is threading.main_thread() else None

    def _parse(self, key: str):
        if key not in self._parsed:
            from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

            try:
                self._parsed[key] = parse(
                    f"${key}$",
                    extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                    parsing_timeout=self._time_limit(),
                )
            except Exception:  # the grader's own failures mean "cannot compare", not a crash
                self._parsed[key] = []
        return self._parsed[key]

    def equivalent(self, a: str, b: str) -> bool:
        ka, kb = normalize_latex(a), normalize_latex(b)
        if ka == kb:
            return True
        if canonical_number(ka) is not None and canonical_number(kb) is not None:
            return False  # two different plain numbers: no need for sympy
        pair = (ka, kb) if ka < kb else (kb, ka)
        if pair not in self._verdicts:
            self._verdicts[pair] = self._verify(*pair)
        return self._verdicts[pair]

    def _verify(self, ka: str, kb: str) -> bool:
        from math_verify import verify

        pa, pb = self._parse(ka), self._parse(kb)
        if not pa or not pb:
            return False
        try:
            return bool(
                verify(pa, pb, timeout_seconds=self._time_limit()) or verify(pb, pa, timeout_seconds=self._time_limit())
            )
        except Exception:
            return False
