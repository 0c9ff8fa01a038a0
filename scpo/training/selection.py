"""Checkpoint selection on a dev split (ScPO §3: "All models are trained for 10 epochs ... When a dev set is
available (e.g., GSM8K and MATH), we use accuracy on the dev set for checkpoint selection (at every epoch)").

`scpo train` with `select_checkpoint: dev` trains in a child process (accelerate / DeepSpeed as configured) that
saves a checkpoint after every epoch; only the newest keeps its optimizer state (for resuming), older ones keep
their weights. Each epoch's checkpoint is then evaluated on `dev_file` by `scpo eval` in its own process (vLLM,
the recipe's eval settings), and the best one by `select_metric` becomes the output folder's model; ties go to
the earlier epoch. Everything is resumable: a finished training phase is marked (`selection/trained.json`), each
evaluation has its own manifest, so a killed selection neither retrains finished epochs nor re-evaluates them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.core.io import write_json

# What a checkpoint holds besides the model: dropped from all but the newest, never copied into the model folder.
TRAINING_STATE = (
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "global_step*",
    "latest",
    "zero_to_fp32.py",
    "training_args.bin",
    "trainer_state.json",
)
METRICS = ("greedy", "maj@k")


def selection_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "selection"


def checkpoints(output_dir: Path) -> list[dict]:
    """The epoch checkpoints in output_dir, in step order: [{epoch, step, path}]."""
    out = []
    for path in Path(output_dir).glob("checkpoint-*"):
        state = path / "trainer_state.json"
        if not state.exists() or not path.name.split("-")[-1].isdigit():
            continue
        epoch = json.loads(state.read_text()).get("epoch")
        out.append({"epoch": round(float(epoch)), "step": int(path.name.split("-")[-1]), "path": str(path)})
    return sorted(out, key=lambda c: c["step"])


def strip_training_state(checkpoint: Path) -> None:
    """Keeps a checkpoint's weights, config and tokenizer; drops its optimizer state (tens of GB for an 8B model)."""
    for pattern in TRAINING_STATE:
        if pattern == "trainer_state.json":
            continue  # the epoch is read from it
        for item in checkpoint.glob(pattern):
            shutil.rmtree(item) if item.is_dir() else item.unlink()


def keep_newest_training_state(output_dir: Path):
    """A callback: after each save, the checkpoints before the newest lose their optimizer state (the newest resumes)."""
    from transformers import TrainerCallback

    class KeepNewestTrainingState(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                for checkpoint in checkpoints(output_dir)[:-1]:
                    strip_training_state(Path(checkpoint["path"]))
            return control

    return KeepNewestTrainingState()


def mark_trained(output_dir: Path, global_step: int) -> None:
    write_json(
        selection_dir(output_dir) / "trained.json", {"global_step": global_step, "checkpoints": checkpoints(output_dir)}
    )


def is_trained(output_dir: Path) -> bool:
    return (selection_dir(output_dir) / "trained.json").exists()


def metric_value(eval_json: dict, metric: str) -> float:
    key = f"maj@{eval_json['k']}" if metric == "maj@k" else metric
    if key not in eval_json:
        raise ScpoError(f"dev evaluation has no {key!r} (select_metric={metric}); it has {sorted(eval_json)}")
    return float(eval_json[key]["mean"])


def best(curve: list[dict]) -> dict:
    """The entry with the highest value; the earliest epoch among equals."""
    return max(curve, key=lambda e: (e["value"], -e["epoch"]))


def install(checkpoint: Path, output_dir: Path) -> list[str]:
    """Copies a checkpoint's model files (weights, config, tokenizer) into output_dir, each atomically."""
    copied = []
    skip = {p.name for pattern in TRAINING_STATE for p in checkpoint.glob(pattern)}
    for item in sorted(checkpoint.iterdir()):
        if not item.is_file() or item.name in skip:
            continue
        tmp = output_dir / f".{item.name}.install.tmp"
        shutil.copy2(item, tmp)
        os.replace(tmp, output_dir / item.name)
        copied.append(item.name)
    return copied
