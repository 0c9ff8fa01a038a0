"""The uninterrupted loop run that the kill tests (test_loop.py, test_soak.py) compare their files against, made once."""

from __future__ import annotations

import pytest
from test_loop import recipe, run_to_completion


@pytest.fixture(scope="session")
def clean_loop_run(tmp_path_factory, tiny_model):
    """test_loop's tiny recipe run to the end, never killed: (its run folder, when each step started)."""
    folder = tmp_path_factory.mktemp("clean_loop")
    timeline = run_to_completion(recipe(folder, tiny_model))
    return folder / "runs" / "tiny", timeline
