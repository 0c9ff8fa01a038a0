"""One exception type for every user-facing input problem, so the CLI can print it without a traceback."""


class ScpoError(Exception):
    """Bad input or settings. The message names the file, row or setting at fault."""
