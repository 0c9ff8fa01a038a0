"""The test layout: a test that starts a process (scpo in a subprocess, torchrun, a shell script), a sampling engine
(vLLM, or transformers generate through scpo's samplers) or a training is an integration test, marked `slow`, so that
`bash tests/run.sh -m "not slow"` runs the fast unit tests alone. Read from the test files' source: a test is caught
when it, a fixture it takes or a function it calls makes such a call, following the functions of its own module and
of the modules it imports from the tests folder (helpers, golden_plan, grpo_helpers, another test file)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers import ROOT

STARTS = {
    "scpo in a subprocess": r"\brun_scpo\(",
    "a subprocess": r"\bsubprocess\.(run|Popen|call|check_call|check_output)\(|\bPopen\(",
    "a sampling engine or a trainer": r"\bmake_sampler\(|\bLLM\(|\bHfSampler\(|\bVoteTrainer\(",
    "an engine or training stage in process": r"main\(\[\s*\"(sample|eval|train|grpo|sft|generate-problems|teacher|chain)\"",
}


class Source:
    """One file's functions, by name, with their source text."""

    def __init__(self, path: Path):
        self.text = path.read_text()
        self.tree = ast.parse(self.text)
        self.functions = {n.name: n for n in ast.walk(self.tree) if isinstance(n, ast.FunctionDef)}

    def segment(self, node) -> str:
        return ast.get_source_segment(self.text, node) or ""


def helper_modules(tests: Path) -> dict[str, Source]:
    """The tests' own importable modules (helpers.py, golden_plan.py, a test file another imports from, ...)."""
    return {p.stem: Source(p) for p in tests.rglob("*.py") if p.name != "conftest.py"}


def starts(path: Path, helpers: dict[str, Source] | None = None) -> dict[str, set[str]]:
    """{test name: what it starts} for the tests of one file that are not marked slow (nor the whole module)."""
    helpers = helper_modules(path.parent) if helpers is None else helpers
    own = Source(path)
    if re.search(r"^pytestmark = .*\bslow\b", own.text, re.MULTILINE):
        return {}
    imported = {}  # a name a test file uses -> (its module's Source, the function's name)
    for node in ast.walk(own.tree):
        if isinstance(node, ast.ImportFrom) and node.module in helpers:
            for alias in node.names:
                imported[alias.asname or alias.name] = (helpers[node.module], alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in helpers:
                    imported[alias.asname or alias.name] = (helpers[alias.name], None)

    def reached(source: Source, node, seen: set) -> set[str]:
        text = source.segment(node)
        found = {what for what, pattern in STARTS.items() if re.search(pattern, text)}
        names = re.findall(r"\b((?:\w+\.)?\w+)\(", text)
        if isinstance(node, ast.FunctionDef):  # a fixture a test takes
            names += [a.arg for a in node.args.args]
        for name in names:
            module, _, attr = name.rpartition(".")
            target = None
            if not module and attr in source.functions and not attr.startswith("test_"):
                target = (source, attr)
            elif source is own and (module or attr) in imported:
                other, function = imported[module or attr]
                target = (other, attr if module else function)
            if target and target[1] in target[0].functions and (id(target[0]), target[1]) not in seen:
                seen.add((id(target[0]), target[1]))
                found |= reached(target[0], target[0].functions[target[1]], seen)
        return found

    out = {}
    for node in own.tree.body:
        if (
            isinstance(node, ast.FunctionDef)
            and node.name.startswith("test_")
            and not any("mark.slow" in ast.unparse(d) for d in node.decorator_list)
        ):
            if found := reached(own, node, {(id(own), node.name)}):
                out[node.name] = found
    return out


def test_every_test_that_starts_a_process_an_engine_or_a_training_is_marked_slow():
    tests = ROOT / "tests"
    helpers = helper_modules(tests)
    unmarked = {
        f"{path.relative_to(ROOT)}::{name}": sorted(what)
        for path in sorted(tests.rglob("test_*.py"))
        for name, what in starts(path, helpers).items()
    }
    assert unmarked == {}, "mark these @pytest.mark.slow (integration tests): " + str(unmarked)


def test_the_check_follows_fixtures_and_helper_modules(tmp_path):
    call = "subprocess" + ".run"  # built, so that this test's own source does not match the pattern it checks
    (tmp_path / "plans.py").write_text(f"import subprocess\n\n\ndef dry_run():\n    return {call}(['bash'])\n")
    (tmp_path / "test_example.py").write_text(
        "import pytest\nimport plans\n\n\ndef helper():\n    return 1\n\n\n@pytest.fixture()\ndef plan():\n"
        "    return plans.dry_run()\n\n\ndef test_fast():\n    assert helper() == 1\n\n\n"
        "def test_through_a_fixture(plan):\n    assert plan\n\n\n"
        "@pytest.mark.slow\ndef test_marked(plan):\n    assert plan\n"
    )
    assert starts(tmp_path / "test_example.py") == {"test_through_a_fixture": {"a subprocess"}}
