"""Self-consistency votes: group a prompt's completions by equivalent final answer.

Pure Python. Only distinct answer keys are compared (never all k^2 completion pairs), in an
order that depends on the multiset of answers, not on the order of the completions, so
permuting the completions never changes the votes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from scpo.tasks import Task

UNPARSED = -1  # group id of completions with no extractable answer


@dataclass
class Group:
    answer: str  # a representative answer as written
    key: Hashable
    votes: int = 0  # voting members only
    members: list[int] = field(default_factory=list)


@dataclass
class PromptVotes:
    k: int  # voting completions (parsed or not)
    groups: list[Group]  # parsed answer groups, most-voted first
    group_of: list[int]  # per completion: index into groups, or UNPARSED
    unparsed_votes: int  # voting completions with no answer
    voting: list[bool] | None = None  # per completion: False for an extra sample (joins its group, has no vote)

    def votes_of(self, i: int) -> int:
        g = self.group_of[i]
        return self.unparsed_votes if g == UNPARSED else self.groups[g].votes

    def voters(self, members: list[int]) -> list[int]:
        """The voting completions among `members` (extra samples left out)."""
        return members if self.voting is None else [i for i in members if self.voting[i]]

    @property
    def num_answers(self) -> int:
        return sum(1 for g in self.groups if g.votes > 0)

    @property
    def top_votes(self) -> int:
        return max((g.votes for g in self.groups), default=0)


def vote(answers: Sequence[str | None], task: Task, voting: Sequence[bool] | None = None) -> PromptVotes:
    """Groups completions by answer. `voting[i]` False marks an extra sample that joins a group but adds no vote."""
    n = len(answers)
    voting = [True] * n if voting is None else list(voting)
    keys = [None if a is None else task.answer_key(a) for a in answers]
    counts: Counter = Counter()
    representative: dict = {}  # the smallest spelling: order-independent
    for a, key, v in zip(answers, keys, voting):
        if key is None:
            continue
        counts[key] += v
        representative[key] = a if key not in representative else min(representative[key], a)
    # Most-voted keys first; ties by the key's text: independent of completion order.
    ordered = sorted(counts, key=lambda key: (-counts[key], str(key)))
    cluster_of: dict = {}
    groups: list[Group] = []
    for key in ordered:
        target = None
        if not task.keys_are_exact:
            for gi, g in enumerate(groups):
                if task.equivalent(str(g.key), str(key)):
                    target = gi
                    break
        if target is None:
            groups.append(Group(answer=representative[key], key=key))
            target = len(groups) - 1
        cluster_of[key] = target
    group_of = []
    unparsed_votes = 0
    for i, (key, v) in enumerate(zip(keys, voting)):
        if key is None:
            group_of.append(UNPARSED)
            unparsed_votes += v
            continue
        g = groups[cluster_of[key]]
        g.members.append(i)
        g.votes += v
        group_of.append(cluster_of[key])
    # Merging may reorder vote totals: most-voted first again, remapping ids.
    order = sorted(range(len(groups)), key=lambda gi: (-groups[gi].votes, str(groups[gi].key)))
    remap = {old: new for new, old in enumerate(order)}
    groups = [groups[old] for old in order]
    group_of = [g if g == UNPARSED else remap[g] for g in group_of]
    return PromptVotes(k=sum(voting), groups=groups, group_of=group_of, unparsed_votes=unparsed_votes, voting=voting)
