"""Stage manifests (scpo/core/manifest.py): a finished output is skipped only for its own config and inputs, and a
training run's name and logging settings are not part of its config (scpo/training/launch.py LOG_ONLY_KEYS)."""

from __future__ import annotations

from scpo.core.io import write_json
from scpo.core.manifest import is_done, write_manifest
from scpo.training.launch import hashed_config, hashed_training

TRAINING = {"learning_rate": 1e-6, "num_train_epochs": 3, "seed": 42}


def finished(tmp_path, config: dict):
    out = tmp_path / "out.json"
    write_json(out, {"done": True})
    write_manifest(out, "train", config, [], {}, 0.0)
    return out


def test_a_manifest_matches_only_its_config(tmp_path):
    out = finished(tmp_path, {"training": TRAINING})
    assert is_done(out, {"training": TRAINING}, []) is not None
    assert is_done(out, {"training": {**TRAINING, "learning_rate": 2e-6}}, []) is None


def test_log_only_training_keys_are_not_hashed():
    logged = {**TRAINING, "run_name": "a", "report_to": ["tensorboard"], "logging_steps": 2, "output_dir": "/x"}
    assert hashed_training(logged) == TRAINING
    assert hashed_training({**TRAINING, "seed": 1}) != TRAINING  # what decides the model stays


def test_a_manifest_written_with_the_run_name_in_its_config_still_resumes(tmp_path):
    # manifests written before LOG_ONLY_KEYS hashed the whole TrainingArguments, run name included
    old = {"settings": {}, "training": {**TRAINING, "run_name": "qwen05b_gsm8k_scpo", "report_to": ["tensorboard"]}}
    out = finished(tmp_path, old)
    now = hashed_config({"settings": {}, "training": {**TRAINING, "run_name": "scpo", "report_to": ["none"]}})
    assert is_done(out, now, []) is None  # without normalizing the saved config: another hash
    assert is_done(out, now, [], normalize=hashed_config) is not None
    changed = hashed_config({"settings": {}, "training": {**TRAINING, "learning_rate": 9e-6}})
    assert is_done(out, changed, [], normalize=hashed_config) is None
