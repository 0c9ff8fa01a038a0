"""One exception type for every user-facing input problem, so the CLI can print it without a traceback."""


class ScpoError(Exception):
    """Bad input or settings. The message names the file, row or setting at fault."""


class HelpRequested(Exception):
    """`-h` / `--help`: the CLI prints the text (every setting, its default and its help) and exits 0."""


class LoopStop(Exception):
    """A stage asks the loop to stop here (the collapse guard): `scpo` exits with STOP_EXIT and
    recipes/iterate.sh skips to the report."""


STOP_EXIT = 3
