"""scpo: consistency-driven LLM post-training (ScPO, Self-Rewarding, CREAM, SCIR, TTRL).

The package root wires the one dependency that points up: which recipe keys exist at all is known
by the CLI layer (scpo/cli.py), and the settings parser (scpo/core/settings.py) asks it only when a
recipe holds a key the stage at hand does not have.
"""

__version__ = "0.1.0"


def _known_keys() -> set[str]:
    from scpo.cli import known_keys

    return known_keys()


def _install() -> None:
    from scpo.core import settings

    settings.install_catalogue(_known_keys)


_install()
