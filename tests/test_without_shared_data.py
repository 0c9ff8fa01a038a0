"""The suite passes in a user's clone, where ../shared/data does not exist: every test that reads the reference data
goes through helpers.data_file, which skips with the reason."""

from __future__ import annotations

import ast

from helpers import ROOT


def test_no_test_reads_the_reference_data_without_data_file():
    offenders = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "DATA":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []  # use helpers.data_file("gsm8k/train.jsonl"): it skips when the data is missing
