"""Votes over a prompt's group of rollouts, for the GRPO rewards (TTRL, Zuo et al. 2025): pure Python.

A group is the rollouts of one prompt. Their final answers are grouped by the task's equivalence
(`voting.vote`), and the majority answer is the most-voted group. Rewards per rollout:
- `majority`: 1 if the rollout's answer is equivalent to the majority answer, else 0 (TTRL's reward);
- `vote_share`: the share of the group's rollouts that agree with the rollout's answer (a soft variant);
- `gold`: 1 if the answer is equivalent to the gold answer, else 0; None (no reward) without a gold answer.
A rollout with no parseable answer gets 0 from all three; a group with no parseable answer at all has
no majority and every rollout gets 0.

Ties for the majority: the tied answer seen first among the rollouts wins, as in TTRL
(`Counter.most_common` keeps first-seen order), and ties are counted. Shares and the majority ratio
divide by all rollouts of the group, parsed or not, as TTRL's majority ratio does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scpo.tasks import Task
from scpo.voting import UNPARSED, PromptVotes, vote


@dataclass
class GroupVote:
    votes: PromptVotes
    majority_group: int  # index into votes.groups, or UNPARSED when no rollout has an answer
    tied: bool  # another answer had as many votes as the majority
    teacher: bool = False  # only a vote teacher's rollouts voted (vote_teacher: frozen | ema)

    @property
    def size(self) -> int:
        return self.votes.k

    @property
    def majority(self) -> str | None:
        return None if self.majority_group == UNPARSED else self.votes.groups[self.majority_group].answer

    @property
    def majority_votes(self) -> int:
        return 0 if self.majority_group == UNPARSED else self.votes.groups[self.majority_group].votes

    @property
    def majority_ratio(self) -> float:
        return self.majority_votes / self.size if self.size else 0.0

    @property
    def distinct_answers(self) -> int:
        return self.votes.num_answers

    @property
    def unparsed(self) -> int:
        return self.votes.unparsed_votes

    def majority_rewards(self) -> list[float]:
        return [float(g != UNPARSED and g == self.majority_group) for g in self.votes.group_of]

    def vote_share_rewards(self) -> list[float]:
        return [0.0 if g == UNPARSED else self.votes.groups[g].votes / self.size for g in self.votes.group_of]


def vote_group(
    answers: Sequence[str | None], task: Task, teacher_answers: Sequence[str | None] | None = None
) -> GroupVote:
    """The majority of one prompt's rollouts, given their extracted answers (None: no answer).

    With `teacher_answers` (vote_teacher: frozen | ema) only the teacher's rollouts vote: the rollouts join the
    answer groups without votes, so the majority, shares and ratio are the teacher's and each reward scores the
    rollouts against them."""
    teacher = list(teacher_answers) if teacher_answers is not None else []
    votes = vote([*teacher, *answers], task, [True] * len(teacher) + [False] * len(answers) if teacher else None)
    top = votes.top_votes
    leaders = [i for i, g in enumerate(votes.groups) if g.votes == top and top > 0]
    # Groups list their members in rollout order, so members[0] is where the answer was first seen (the teacher's
    # rollouts come first, and every leader has a teacher member).
    first_seen = min(leaders, key=lambda i: votes.groups[i].members[0]) if leaders else UNPARSED
    if teacher:  # index the policy's rollouts only, as the rewards do
        n = len(teacher)
        for g in votes.groups:
            g.members = [i - n for i in g.members if i >= n]
        votes.group_of, votes.voting = votes.group_of[n:], votes.voting[n:]
    return GroupVote(votes, first_seen, tied=len(leaders) > 1, teacher=bool(teacher))


def gold_answer(gold, task: Task) -> str | None:
    """The gold final answer of a prompt, or None when it has none (unlabeled)."""
    if gold is None or (isinstance(gold, str) and not gold.strip()):
        return None
    return task.extract_gold(gold)


def is_correct(answer: str | None, gold: str | None, task: Task) -> bool:
    return answer is not None and gold is not None and task.equivalent(answer, gold)


def gold_rewards(answers: Sequence[str | None], gold, task: Task) -> list[float | None]:
    """Accuracy against the gold answer; None for every rollout of a prompt without one (no reward, not 0)."""
    target = gold_answer(gold, task)
    if target is None:
        return [None] * len(answers)
    return [float(is_correct(a, target, task)) for a in answers]


def format_rewards(
    completions: Sequence[str], answers: Sequence[str | None], pattern: str | None = None
) -> list[float]:
    """1 for a rollout that has a parseable final answer (and, with `pattern`, matches it as a whole), else 0."""
    import re

    regex = re.compile(pattern, re.DOTALL) if pattern else None
    return [
        float(a is not None and (regex is None or regex.fullmatch(c.strip()) is not None))
        for c, a in zip(completions, answers)
    ]


def batch_stats(groups: Sequence[GroupVote], golds: Sequence, task: Task) -> dict[str, float]:
    """Per-batch numbers to log. Label accuracy (majority == gold) covers only prompts with a gold answer
    and is absent when none has one; it is reported, never trained on."""
    n = len(groups)
    stats = {
        "prompts": float(n),
        "majority_ratio": sum(g.majority_ratio for g in groups) / n if n else 0.0,
        "distinct_answers": sum(g.distinct_answers for g in groups) / n if n else 0.0,
        "unparsed_rollouts": float(sum(g.unparsed for g in groups)),
        "no_answer_prompts": float(sum(g.majority_group == UNPARSED for g in groups)),
        "majority_ties": float(sum(g.tied for g in groups)),
    }
    labeled = [(g, target) for g, gold in zip(groups, golds) if (target := gold_answer(gold, task)) is not None]
    if labeled:
        stats["label_accuracy"] = sum(is_correct(g.majority, t, task) for g, t in labeled) / len(labeled)
    return stats
