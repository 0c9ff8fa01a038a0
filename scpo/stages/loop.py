"""Settings of the loop itself, and `scpo setting NAME [--config recipe] [...]`: print one resolved setting.

recipes/iterate.sh reads its run name, output root and iteration count this way, so the recipe
and the command line resolve exactly as every stage resolves them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from scpo.errors import ScpoError
from scpo.settings import parse_settings


@dataclass
class LoopSettings:
    run_name: str = "scpo"
    output_root: str = "runs"
    iterations: int = 2
    model: str = "embedded"
    iteration: int = 0


def main(argv: list[str]) -> str:
    if not argv or argv[0].startswith("--"):
        raise ScpoError("usage: scpo setting NAME [--config recipe.yaml] [--setting value ...]")
    name, rest = argv[0], argv[1:]
    settings = parse_settings(LoopSettings, rest)
    fields = {f.name for f in dataclasses.fields(LoopSettings)}
    if name not in fields:
        raise ScpoError(f"scpo setting: {name!r} is not a loop setting ({sorted(fields)})")
    value = getattr(settings, name)
    print(value)
    return str(value)
