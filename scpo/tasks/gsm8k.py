"""GSM8K: integer answers. '#### N' in gold rationales; in completions, 'The answer is N', else the last number."""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass

from scpo.tasks._base import Task
from scpo.tasks._numbers import canonical_number, find_numbers

HASHES = re.compile(r"####\s*(.+)")
# Possessive quantifiers (*+, ?+): a run of spaces is matched once and never given back, so degenerate text
# ("The answer is" and 100k spaces) costs linear time instead of the cubic backtracking of three \s* in a row.
ANSWER_IS = re.compile(r"answer is[:\s]*+\$?+\s*+(?:\\boxed\{)?+\s*+([-\d.,/$]+)", re.IGNORECASE)
# "The answer is 12 - 4 = 8." states a computation: its result is the number after the sentence's last "=".
SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
RESULT = re.compile(r"=\s*+\$?+\s*+(-?[\d.,/]+)")
BOXED_NUMBER = re.compile(r"\\boxed\{\s*+\\?+\$?+([-\d.,/]++)[^}]{0,64}+\}")  # a unit may follow the number


@dataclass
class GSM8K(Task):
    name: str = "gsm8k"
    instruction: str = "Solve the problem step by step. End your answer with a line of the form 'The answer is N.'"
    keys_are_exact: bool = True

    def extract(self, completion: str) -> str | None:
        return self._extract(completion, (ANSWER_IS, BOXED_NUMBER, HASHES))

    def extract_gold(self, gold) -> str | None:
        return self._extract(str(gold), (HASHES, ANSWER_IS, BOXED_NUMBER))

    @staticmethod
    def _extract(text: str, patterns) -> str | None:
        for pattern in patterns:
            matches = list(pattern.finditer(text))
            if matches:
                stated = matches[-1].group(1)
                if pattern is ANSWER_IS:
                    rest = SENTENCE_END.split(text[matches[-1].start(1) : matches[-1].start(1) + 160], maxsplit=1)[0]
                    results = RESULT.findall(rest)
                    stated = results[-1] if results else stated
                numbers = find_numbers(stated)
                if numbers:
                    return canonical_number(numbers[0])
        numbers = find_numbers(text)
        return canonical_number(numbers[-1]) if numbers else None

    def answer_key(self, answer: str) -> Hashable:
        return canonical_number(answer) or answer.strip()
