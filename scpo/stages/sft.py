"""`scpo sft`: supervised fine-tuning on seed data with TRL's SFTTrainer: the loop's M_0 when `sft_file` is set.

CREAM (Wang et al., ICLR 2025; code Raibows/CREAM) starts from M_0 = the base model fine-tuned on human-written
seed data (oasst1, about 3.4K examples: "M1 model can be obtained by SFT training the initial model M0"), and
rewards the first iteration's responses by log pi_M0(y|x) - log pi_base(y|x) against the base's own likelihood
ranking. With `sft_file` the loop plan runs this stage first (runs/<run>/sft/model) and passes the base model as
M_0's reference (`initial_reference_model`).

    scpo sft --config recipe.yaml --sft_file seed.jsonl --model base --output_dir out

The data are TRL's SFT formats, one example per row: `messages` (a chat), `prompt` + `completion`, or `text`.
Settings: this stage's own, and every `SFTConfig` / `ModelConfig` field; as one recipe also holds the preference
training's settings, `sft_<name>` sets SFTConfig's `<name>` here only (CREAM: sft_learning_rate 5e-6,
sft_num_train_epochs 5 beside learning_rate 1e-6 for DPO). The shared launcher (scpo/training/launch.py) gives it
accelerate / DeepSpeed, resume, LoRA merging and the manifest, as for `scpo train`.
"""

from __future__ import annotations

from dataclasses import dataclass

from scpo.core import trl_keys
from scpo.core.blocks import LaunchBlock, ModelBlock, StageBlock
from scpo.core.errors import ScpoError
from scpo.core.io import read_numbered
from scpo.core.settings import wants_help
from scpo.training.launch import TrlJob, parse_with_trl, trl_help

FORMATS = ("messages", "prompt + completion", "text")


@dataclass
class SftSettings(StageBlock, LaunchBlock, ModelBlock):
    """scpo sft: supervised fine-tuning on seed data (TRL's SFTTrainer); sft_<name> sets SFTConfig's <name>."""

    sft_file: str | None = None  # seed SFT data: rows with messages, prompt + completion, or text


SETTINGS = SftSettings


def parse(argv: list[str]):
    if wants_help(argv):
        raise trl_help(
            SftSettings, {"SFTConfig (also as sft_<name>)": trl_keys.SFT_CONFIG, "ModelConfig": trl_keys.MODEL_CONFIG}
        )
    from trl import ModelConfig, SFTConfig

    return parse_with_trl(argv, (SftSettings, SFTConfig, ModelConfig), stage="sft", prefix="sft_")


def check_examples(path: str) -> int:
    """Every row is one of TRL's SFT formats; the error names the line."""
    rows = read_numbered(path)
    for line, row in rows:
        ok = (
            (isinstance(row.get("messages"), list) and row["messages"])
            or (isinstance(row.get("prompt"), (str, list)) and isinstance(row.get("completion"), (str, list)))
            or isinstance(row.get("text"), str)
        )
        if not ok:
            raise ScpoError(
                f"{path}:{line}: an SFT example needs one of {', '.join(FORMATS)} (fields present: {sorted(row)})"
            )
    return len(rows)


def run(settings, args, model_args, argv: list[str]) -> dict | None:
    if not settings.sft_file:
        raise ScpoError("scpo sft needs sft_file: seed examples (messages, prompt + completion, or text)")
    job = TrlJob("sft", settings, args, model_args, argv, inputs=[settings.sft_file])
    if (done := job.done()) is not None:
        return done
    examples = check_examples(settings.sft_file)  # before any checkpoint is touched or a process started
    if job.relaunch():
        return None
    job.claim()

    import datasets
    from trl import SFTTrainer

    datasets.disable_progress_bars()
    kind = "parquet" if settings.sft_file.endswith(".parquet") else "json"
    dataset = datasets.load_dataset(kind, data_files=settings.sft_file, split="train")
    tokenizer, model = job.load_model()
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=job.peft_config()
    )
    counts = {"examples": examples}
    job.train(trainer, counts)
    counts["processes"] = trainer.accelerator.num_processes
    counts["deepspeed"] = trainer.is_deepspeed_enabled
    return job.finish(trainer, tokenizer, counts)


def main(argv: list[str]) -> dict | None:
    settings, args, model_args = parse(argv)
    return run(settings, args, model_args, argv)
