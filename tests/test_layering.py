"""The layering, from the imports: every module imports only its own layer or the ones below, and no stage imports
another stage. New modules must be given a layer here (an unplaced module fails the test).

    core (infrastructure) < tasks < logic (pure) < components (sampling, labelers, losses, rewards, training,
    reporting) < stages < loop and CLI
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

LAYERS = [
    ("core", ("scpo.core",)),
    ("tasks", ("scpo.tasks",)),
    (
        "logic",
        (
            "scpo.voting",
            "scpo.metrics",
            "scpo.consistency",
            "scpo.judge",
            "scpo.problems",
            "scpo.pairs",
            "scpo.reward_pairs",
            "scpo.adaptive",
            "scpo.soft_votes",
            "scpo.selective_votes",
        ),
    ),
    (
        "components",
        (
            "scpo.sampling",
            "scpo.scoring",
            "scpo.labelers",
            "scpo.losses",
            "scpo.rewards",
            "scpo.training",
            "scpo.reporting",
            "scpo.semantic",
            "scpo.embeddings",
        ),
    ),
    ("stages", ("scpo.stages", "data_tools")),
    ("top", ("scpo.loop", "scpo.cli", "scpo")),
]
STAGE_PACKAGES = ("scpo.stages", "data_tools")
# Pure logic: imports no torch (tests in milliseconds, and the stages that only move rows start fast).
TORCH_FREE = (
    "scpo.core.settings",
    "scpo.core.io",
    "scpo.core.manifest",
    "scpo.core.rows",
    "scpo.core.registry",
    "scpo.tasks",
    "scpo.voting",
    "scpo.metrics",
    "scpo.consistency",
    "scpo.judge",
    "scpo.problems",
    "scpo.pairs",
    "scpo.reward_pairs",
    "scpo.adaptive",
    "scpo.soft_votes",
    "scpo.selective_votes",
    "scpo.semantic",
    "scpo.embeddings",
    "scpo.core.encoders",
    "scpo.rewards",
    "scpo.labelers",
    "scpo.losses",
    "scpo.training.dynamic_sampling",
    "scpo.stages.label",
    "scpo.stages.pairs",
    "scpo.loop.plan",
    "scpo.cli",
)


def layer_of(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    assert best is not None, f"{module} has no layer: add it to LAYERS in tests/test_layering.py"
    return best[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    files = sorted((ROOT / "scpo").rglob("*.py")) + sorted((ROOT / "data_tools").rglob("*.py"))
    return {module_name(p): p for p in files}


def is_main_block(node: ast.AST) -> bool:
    """`if __name__ == "__main__":`: a script's entry point, the top of its own process (it may call the CLI)."""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports (module level or inside functions; not in its `__main__` block)."""
    tree = ast.parse(path.read_text())
    tree.body = [node for node in tree.body if not is_main_block(node)]
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names
            ]
        for name in names:
            if name.split(".")[0] not in ("scpo", "data_tools"):
                continue
            while name not in known and "." in name:  # `from scpo.stages import train` names a module
                name = name.rsplit(".", 1)[0]
            out.add(name)
    return out


def stage_of(module: str) -> str | None:
    for package in STAGE_PACKAGES:
        if module.startswith(package + "."):
            return module
    return None


def test_every_import_goes_down_the_layers_and_no_stage_imports_another():
    found = modules()
    assert "scpo.stages.sample" in found and "scpo.core.settings" in found
    wrong = []
    for module, path in found.items():
        for target in imports(path, set(found)):
            if target == module:
                continue
            if layer_of(target) > layer_of(module):
                wrong.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                )
            elif stage_of(module) and stage_of(target) and stage_of(target) != module:
                wrong.append(f"stage {module} imports stage {target}")
    assert wrong == []


def test_the_layering_test_sees_a_wrong_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from scpo.stages import sample\n    import scpo.loop.plan\n")
    got = imports(bad, set(modules()))
    assert got == {"scpo.stages.sample", "scpo.loop.plan"}
    assert layer_of("scpo.loop.plan") > layer_of("scpo.stages.sample") > layer_of("scpo.core.io")


@pytest.mark.slow  # a subprocess
def test_pure_logic_imports_no_torch():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in TORCH_FREE)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trl', 'transformers', 'vllm')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
