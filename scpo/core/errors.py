"""One exception type for every user-facing input problem, so the CLI can print it without a traceback, and the
"did you mean" hint its messages give for a misspelt name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ScpoError(Exception):
    """Bad input or settings. The message names the file, row or setting at fault."""


class HelpRequested(Exception):
    """`-h` / `--help`: the CLI prints the text (every setting, its default and its help) and exits 0."""


class LoopStop(Exception):
    """A stage asks the loop to stop here (the collapse guard): `scpo` exits with STOP_EXIT and
    recipes/iterate.sh skips to the report."""


STOP_EXIT = 3


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """' (did you mean 'closest'?)' for the known name closest to a misspelt one (difflib's ratio >= 0.6), else ''."""
    close = difflib.get_close_matches(str(name), sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
