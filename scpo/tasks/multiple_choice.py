"""Multiple choice: a letter among the first `num_choices` (A-E by default)."""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass

from scpo.tasks._base import Task


@dataclass
class MultipleChoice(Task):
    name: str = "multiple_choice"
    num_choices: int = 5
    instruction: str = "Think step by step, then end with 'The answer is (X)' where X is the letter of your choice."
    keys_are_exact: bool = True

    def _patterns(self) -> list[re.Pattern]:
        letters = "ABCDEFGHIJ"[: self.num_choices]
        L = f"[{letters}]"
        # After "answer", an upper-case letter, or a lower-case one that stands alone ("b." / "(b)").
        # Possessive quantifiers and line-bounded spaces: linear time on degenerate text (long whitespace runs).
        after = rf"\(?+\**+\s*+({L}\b|[{letters.lower()}](?=\)|\.|\*|[ \t]*+$))"
        return [
            re.compile(rf"(?i:answer is)[:\s]*+{after}", re.MULTILINE),
            re.compile(rf"(?i:answer)[:\s]++{after}", re.MULTILINE),
            re.compile(rf"\\boxed\{{\s*+\(?+({L})\)?+\s*+\}}"),
            re.compile(rf"\(({L})\)"),
            re.compile(rf"^[ \t]*+\(?+({L})[).:]?+[ \t]*+$", re.MULTILINE),
        ]

    def extract(self, completion: str) -> str | None:
        for pattern in self._patterns():
            matches = pattern.findall(completion)
            if matches:
                return matches[-1].upper()
        return None

    def extract_gold(self, gold) -> str | None:
        gold = str(gold).strip()
        if len(gold) == 1 and gold.upper() in "ABCDEFGHIJ"[: self.num_choices]:
            return gold.upper()
        return self.extract(gold)

    def answer_key(self, answer: str) -> Hashable:
        return answer.strip().upper()
