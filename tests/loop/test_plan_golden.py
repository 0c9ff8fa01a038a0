"""Golden: for every shipped recipe, the loop plan (bash and Slurm dry runs) and every stage's manifest config are
those recorded before the structure moves (tests/golden/plans.json, written by tests/golden_plan.py on that code).

Compared per step: the stage, the config it hashes into its manifest (what decides whether a finished stage is
redone), and where it works (--iteration, --iter_dir, --output_dir); per Slurm job also its sbatch options,
dependency and stages. One deliberate change: a labeler's labels hash only the reference models it declares
(`reference_models`): the judge's labels no longer depend on M_{t-1} / M_{t-2} and SCIR's not on M_{t-2}, which
they never read; the plan no longer passes them.
"""

from __future__ import annotations

import json

import pytest

import golden_plan

WHERE = ("--iteration", "--iter_dir", "--output_dir")
REFERENCES = ("reference_model", "previous_reference_model")


def where(args: list[str]) -> dict[str, str]:
    out = {}
    for i, arg in enumerate(args[:-1]):
        if arg in WHERE:
            out[arg] = args[i + 1]
    return out


def declared(stage: str, config):
    """A label config without the reference models its labeler does not declare."""
    if stage != "label" or not config or "labeler" not in config:
        return config
    from scpo.labelers import LABELERS

    keep = LABELERS.get(config["labeler"]).reference_models
    config = dict(config)
    for name in REFERENCES[keep:]:
        config.pop(name + "_weights", None)
        config[name] = None
    return config


@pytest.fixture(scope="module")
def plans():
    return golden_plan.all_plans()


GOLDEN = json.loads(golden_plan.GOLDEN.read_text())


@pytest.mark.parametrize("recipe", sorted(GOLDEN))
def test_plan_and_stage_configs_are_unchanged(plans, recipe):
    want, got = GOLDEN[recipe], plans[recipe]
    assert set(want) == set(got)
    if "grpo" in want:
        assert got["grpo"] == want["grpo"]
        return
    assert [s["stage"] for s in got["bash"]] == [s["stage"] for s in want["bash"]]
    for old, new in zip(want["bash"], got["bash"]):
        assert where(new["args"]) == where(old["args"]), old["stage"]
        assert new["config"] == declared(old["stage"], old["config"]), old["stage"]
    assert [j["job"] for j in got["slurm"]] == [j["job"] for j in want["slurm"]]
    for old, new in zip(want["slurm"], got["slurm"]):
        for key in ("options", "dependency", "stages", "script"):
            assert new[key] == old[key], (old["job"], key)
        assert where(new["args"]) == where(old["args"]), old["job"]
        assert new["configs"] == [declared(stage, c) for stage, c in zip(old["stages"], old["configs"])], old["job"]
