"""Shared fixtures: real models, built locally (no hub): a tiny random Llama and the embedded SmolLM2."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedded_model() -> str:
    from scpo.core.models import prepare_embedded

    return str(prepare_embedded())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, embedded_model) -> str:
    from scpo.core.models import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("models") / "tiny"))
