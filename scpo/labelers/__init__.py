"""Labelers, a registry: `labeler: <name>` is scpo/labelers/<name>.py (or a dotted path to a Labeler subclass).

votes (ScPO, the default), judge (Self-Rewarding), implicit (the DPO implicit reward), cream
(CREAM) and scir (SCIR). `scpo label` and `scpo pairs` run whichever is named through one code path;
what a labeler is and what it declares is scpo/labelers/_base.py.
"""

from __future__ import annotations

from scpo.core.registry import Registry
from scpo.labelers._base import Choice, Labeler, LabelFiles, pair_row

LABELERS: Registry = Registry("labeler", __name__, Labeler)

__all__ = ["LABELERS", "Choice", "LabelFiles", "Labeler", "pair_row"]
