"""What a task is: prompt building, final-answer extraction, and answer equivalence.

Grouping answers for votes goes through two methods so it stays fast: `answer_key` maps an
answer to a hashable canonical form (equal keys are always equivalent, found in O(1)), and
`equivalent` decides the remaining cases between distinct keys. A task whose keys are exact
(`keys_are_exact = True`) never has `equivalent` called across keys.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass


@dataclass
class Task:
    name: str = "base"
    # Appended to the problem in the user turn; the model's chat template is applied by the sampler.
    instruction: str = ""
    system_prompt: str | None = None
    # The whole prompt, with {problem} where the problem goes (instead of problem + instruction), e.g. ScPO's
    # zero-shot prompts for base models: "... Q: {problem}\nA: Let's think step by step."
    prompt_template: str | None = None
    # False: the prompt is plain text, sent without a chat template (base models such as Llama-3 8B); pairs are
    # then TRL's plain preference format (prompt, chosen and rejected as strings).
    chat: bool = True
    # Whether length-truncated completions vote (their answer is often cut off).
    truncated_completions_vote: bool = False
    keys_are_exact: bool = False
    # The name of a per-answer score in [0, 1] that `score` gives beside correctness (zebra: "cell_accuracy").
    partial_credit: str | None = None

    def prompt_for(self, row: dict) -> list[dict] | str:
        """The prompt for a problem row; a task whose prompt needs more of the row than its text overrides it."""
        return self.build_prompt(row["prompt"])

    def build_prompt(self, problem: str) -> list[dict] | str:
        """What the model is given for a problem: chat messages, or plain text when `chat` is false."""
        if self.prompt_template:
            content = self.prompt_template.replace("{problem}", problem)
        else:
            content = f"{problem}\n\n{self.instruction}" if self.instruction else problem
        if not self.chat:
            return content
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": content})
        return messages

    def extract(self, completion: str) -> str | None:
        """The final answer in a completion, or None when it has none."""
        raise NotImplementedError

    def vote_answer(self, completion: str, truncated: bool) -> str | None:
        """The answer a completion votes with: none when the length limit cut it off (unless such completions vote)."""
        return None if truncated and not self.truncated_completions_vote else self.extract(completion)

    def extract_gold(self, gold) -> str | None:
        """The final answer in a gold field (which may be a full rationale)."""
        gold = str(gold)
        return self.extract(gold) or (gold.strip() or None)

    def answer_key(self, answer: str) -> Hashable:
        return answer.strip()

    def equivalent(self, a: str, b: str) -> bool:
        return self.answer_key(a) == self.answer_key(b)

    def credit_units(self, gold: str) -> int:
        """How many units the `partial_credit` score of an answer to this gold averages over (zebra: the grid's cells):
        the metric over a set is sum(score x units) / sum(units), micro as ZeroEval's cell accuracy."""
        return 1

    def score(self, answer: str | None, gold: str) -> float:
        """The `partial_credit` score of an answer against the gold answer (tasks that declare one)."""
        raise NotImplementedError

    def subset(self, problem: dict) -> str | None:
        """The part of an eval set a problem belongs to, reported separately (zebra: easy / hard), or None."""
        return None

    def check_problem(self, problem: dict) -> str | None:
        """Why an eval row cannot be graded, or None; `scpo eval` refuses such rows before sampling."""
        return None
