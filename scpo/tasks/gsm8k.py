"""GSM8K: integer answers. '#### N' in gold rationales; in completions, 'The answer is N', else the last number."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Hashable

from scpo.tasks._base import Task
from scpo.tasks._numbers import canonical_number, find_numbers

HASHES = re.compile(r"####\s*(.+)")
# Possessive quantifiers (*+, ?+): a run of spaces is matched once and never given back, so degenerate text
# ("The answer is" and 100k spaces) costs linear time instead of the cubic backtracking of three \s* in a row.
ANSWER_IS = re.compile(r"answer is[:\s]*+\$?+\s*+(?:\\boxed\{)?+\s*+([-\d.,/$]+)", re.IGNORECASE)
BOXED_NUMBER = re.compile(r"\\boxed\{\s*+\\?+\$?+([-\d.,/]++)[^}]{0,64}+\}")  # a unit may follow the number


@dataclass
class GSM8K(Task):
    name: str = "gsm8k"
    instruction: str = ("Solve the problem step by step. "
                        "End your answer with a line of the form 'The answer is N.'")
    keys_are_exact: bool = True

    def extract(self, completion: str) -> str | None:
        return self._extract(completion, (ANSWER_IS, BOXED_NUMBER, HASHES))

    def extract_gold(self, gold) -> str | None:
        return self._extract(str(gold), (HASHES, ANSWER_IS, BOXED_NUMBER))

    @staticmethod
    def _extract(text: str, patterns) -> str | None:
        for pattern in patterns:
            matches = pattern.findall(text)
            if matches:
                numbers = find_numbers(matches[-1])
                if numbers:
                    return canonical_number(numbers[0])
        numbers = find_numbers(text)
        return canonical_number(numbers[-1]) if numbers else None

    def answer_key(self, answer: str) -> Hashable:
        return canonical_number(answer) or answer.strip()
