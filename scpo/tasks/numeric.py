"""Float answers (SVAMP, MAWPS, AMC): '145' == '145.0', and values equal within a relative tolerance."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from scpo.tasks._numbers import canonical_number, close
from scpo.tasks.gsm8k import GSM8K


@dataclass
class Numeric(GSM8K):
    name: str = "numeric"
    rel_tol: float = 1e-6
    # Keys are canonical decimals; values like 0.3333333 vs 1/3 still need the tolerance check.
    keys_are_exact: bool = False

    def extract_gold(self, gold) -> str | None:
        return canonical_number(str(gold))

    def answer_key(self, answer: str) -> Hashable:
        return canonical_number(answer) or answer.strip()

    def equivalent(self, a: str, b: str) -> bool:
        return self.answer_key(a) == self.answer_key(b) or close(a, b, self.rel_tol)
