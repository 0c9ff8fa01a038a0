"""The one-file rule for the internal labelers (issue 33): judge, implicit, cream and scir each declare their settings
in their own file; what they share (scpo/labelers/_internal.py) declares none. The labels they make hash the same
settings as when one block held them all (tests/loop/test_plan_golden.py holds those hashes)."""

from __future__ import annotations

import dataclasses

import pytest

from scpo.core.errors import ScpoError
from scpo.core.settings import Block, parse_settings, with_extensions
from scpo.labelers import LABELERS

INTERNAL = ("judge", "implicit", "cream", "scir")


@pytest.mark.parametrize("name", INTERNAL)
def test_each_internal_labeler_declares_its_settings_in_its_own_file(name):
    labeler = LABELERS.get(name)
    assert labeler.settings is not None and labeler.settings.__module__ == labeler.__module__ == f"scpo.labelers.{name}"


def test_the_shared_module_declares_no_settings():
    from scpo.labelers import _internal

    blocks = [v for v in vars(_internal).values() if isinstance(v, type) and issubclass(v, Block)]
    assert blocks == []


def test_scir_takes_the_judge_and_implicit_settings_it_scores_with():
    from scpo.labelers.scir import ScirSettings

    names = {f.name for f in dataclasses.fields(ScirSettings)}
    assert {"judge_samples", "judge_template", "score_batch_size", "scir_threshold"} <= names
    assert "consistency_metric" not in names  # cream's


def test_the_label_stage_takes_every_labelers_settings_and_checks_them():
    from scpo.stages.label import LabelSettings

    cls = with_extensions(LabelSettings, LABELERS)
    s = parse_settings(cls, ["--labeler", "scir", "--judge_samples", "2", "--consistency_metric", "spearman"])
    assert (s.judge_samples, s.consistency_metric, s.scir_rewards) == (2, "spearman", ["judge", "implicit"])
    for argv, message in (
        (["--judge_samples", "0"], "judge_samples=0"),
        (["--consistency_metric", "pearson"], "consistency_metric='pearson'"),
        (["--labeler", "scir", "--scir_rewards", "judge"], "scir_rewards"),
        (["--judge_template", "no fields"], "judge_template"),
    ):
        with pytest.raises(ScpoError, match=message):
            parse_settings(cls, argv)


def test_the_labels_hash_the_settings_of_judge_cream_and_scir_for_every_internal_labeler():
    from scpo.labelers._internal import label_config_keys
    from scpo.labelers.cream import CreamSettings
    from scpo.labelers.judge import JudgeSettings
    from scpo.labelers.scir import ScirSettings

    keys = set(label_config_keys())
    for cls in (JudgeSettings, CreamSettings, ScirSettings):
        assert {f.name for f in dataclasses.fields(cls)} - {"score_batch_size"} <= keys, cls.__name__
    assert "score_batch_size" not in keys  # how the forward passes are batched, not what they compute
