"""`format`: 1 for a rollout with a parseable final answer (and, with `format_regex`, matching it as a whole), else 0."""

from __future__ import annotations

from dataclasses import dataclass

from scpo.core.settings import Block
from scpo.rewards._base import Reward
from scpo.rewards._votes import format_rewards


@dataclass
class FormatSettings(Block):
    format_regex: str | None = None  # `format` reward: the whole completion must match (default: any parseable answer)


class Format(Reward):
    name = "format"
    settings = FormatSettings

    def __call__(self, batch):
        return format_rewards(batch.texts, batch.answers, getattr(self.s, "format_regex", None))
