"""`scpo train`: preference training on a pairs file with TRL, under accelerate (+ DeepSpeed ZeRO), with LoRA.

    scpo train --config recipe.yaml --pairs_file pairs.jsonl --output_dir out [--accelerate_config zero2]

Settings: this stage's own (below, with each loss's block), every `DPOConfig` field and every
`ModelConfig` field (LoRA: `use_peft`, `lora_r`, ...), from the recipe and the command line. The
loss is a registry entry (scpo/losses/<loss>.py). With `accelerate_config` set (cpu, ddp, zero2,
zero3, zero3_offload, or a path), the stage relaunches itself (scpo/training/launch.py). The saved
folder (a merged copy for LoRA, the adapter in `adapter/`) is what the next iteration's vLLM loads.

Reference log-probs: pairs sampled by the reference model carry its log-probs and exact token ids
(`reference: sampler`, chosen automatically): no reference forward pass at all. Otherwise TRL's
`precompute_ref_log_probs` runs the reference once before training.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from scpo.core.blocks import LaunchBlock, ModelBlock, StageBlock
from scpo.core.errors import ScpoError
from scpo.core.io import read_rows
from scpo.core.manifest import iter_file
from scpo.core import trl_keys
from scpo.core.settings import peek, wants_help, with_extensions
from scpo.losses import LOSSES, PairLoss
from scpo.sampling import prompt_ids
from scpo.training.launch import TrlJob, parse_with_trl, trl_help

PAIR_FIELDS = {"prompt": (str, list), "chosen": (str, list), "rejected": (str, list)}


@dataclass
class TrainSettings(StageBlock, LaunchBlock, ModelBlock):
    """scpo train: preference training on a pairs file with TRL's DPOTrainer and a pair loss (scpo/losses/)."""

    loss: str = "scpo"  # scpo | irpo | dpo | cream, or a dotted path to a PairLoss subclass
    reference: str = "auto"  # auto: the sampler's log-probs when the pairs carry them, else "model" (TRL precompute)
    check_ref_logps: int = 0  # recompute this many pairs' reference log-probs and report the difference
    pairs_file: str | None = None  # default <iter_dir>/pairs.jsonl

    def __post_init__(self):
        super().__post_init__()
        LOSSES.get(self.loss)  # a named error for an unknown loss
        if self.reference not in ("auto", "sampler", "model"):
            raise ScpoError(f"setting reference={self.reference!r}: expected auto, sampler or model")


SETTINGS = TrainSettings
EXTENSIONS = LOSSES  # each loss's settings are recipe keys of this stage


def parse(argv: list[str]):
    """(TrainSettings with every loss's block, DPOConfig, ModelConfig) from a recipe and overrides, through TRL's parser."""
    settings = with_extensions(TrainSettings, LOSSES, peek(argv, "loss"))
    if wants_help(argv):
        raise trl_help(settings, {"DPOConfig": trl_keys.DPO_CONFIG, "ModelConfig": trl_keys.MODEL_CONFIG})
    from trl import DPOConfig, ModelConfig

    return parse_with_trl(argv, (settings, DPOConfig, ModelConfig))


def check_pairs(path: str, loss: PairLoss) -> None:
    """The pairs file's rows, checked for this loss: errors name the file and the fault."""
    rows = read_rows(path, required=PAIR_FIELDS, allow_empty=True)
    if not rows:
        raise ScpoError(f"{path}: no pairs to train on; lower tau or sample more completions per prompt")
    loss.check_rows(rows, path)


def load_pairs(path: str):
    """The pairs as a `datasets.Dataset`, loaded from the file (not from memory) so it has cache files: TRL's
    reference precompute writes its cache next to them on rank 0 and every rank reads the same file."""
    import datasets

    datasets.disable_progress_bars()
    kind = "parquet" if str(path).endswith(".parquet") else "json"
    return datasets.load_dataset(kind, data_files=str(path), split="train")


def sampler_reference_ready(ds) -> bool:
    return all(c in ds.column_names for c in
               ("ref_chosen_logps", "ref_rejected_logps", "chosen_token_ids", "rejected_token_ids"))


def sampled_by(ds, model_path: str) -> bool:
    """Whether every pair was sampled by this very model (then its log-probs are the reference)."""
    if "ref_model" not in ds.column_names:
        return False
    return {str(Path(p).resolve()) for p in ds.unique("ref_model")} == {str(Path(model_path).resolve())}


def check_trl_options(loss: PairLoss, args) -> None:
    """TRL options that only its own loss implements; with ours they would be silently ignored."""
    if loss.uses_trl_loss:
        return
    unsupported = {"ld_alpha": args.ld_alpha is not None, "f_divergence_type": args.f_divergence_type != "reverse_kl",
                   "use_weighting": args.use_weighting, "label_smoothing": args.label_smoothing != 0,
                   "sync_ref_model": args.sync_ref_model, "loss_type": list(args.loss_type) != ["sigmoid"]}
    bad = [name for name, is_set in unsupported.items() if is_set]
    if bad:
        raise ScpoError(f"setting(s) {bad} apply to TRL's own losses only; with loss={loss.name} they would be "
                        "ignored. Unset them, or use loss: dpo")


def to_sampler_tokens(ds, tokenizer, max_length: int | None = None, columns: tuple[str, ...] = ()):
    """Exact training tokens: the chat-templated prompt and the sampled completion token ids.

    Pairs longer than max_length are dropped: cutting them would score fewer tokens under the policy
    than the sampler's reference log-probs cover, and the margin would be wrong.
    """
    def tokenize(row):
        messages = row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]
        ids = prompt_ids(tokenizer, messages)
        return {"prompt_ids": ids, "chosen_ids": row["chosen_token_ids"], "rejected_ids": row["rejected_token_ids"]}

    keep = {*columns, "ref_chosen_logps", "ref_rejected_logps"}
    ds = ds.map(tokenize, remove_columns=[c for c in ds.column_names if c not in keep])
    if max_length:
        before = len(ds)
        ds = ds.filter(lambda r: len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"])) <= max_length)
        if len(ds) < before:
            print(f"[train] dropped {before - len(ds)} of {before} pairs longer than max_length={max_length}",
                  file=sys.stderr)
        if not len(ds):
            raise ScpoError(f"every pair is longer than max_length={max_length}: raise max_length")
    return ds


def run(settings, training_args, model_args, argv: list[str]) -> dict | None:
    pairs_file = iter_file(settings.iter_dir, settings.pairs_file, "pairs.jsonl")
    job = TrlJob("train", settings, training_args, model_args, argv, inputs=[pairs_file])
    if (done := job.done()) is not None:
        return done
    loss = LOSSES.get(settings.loss)(settings)
    check_trl_options(loss, training_args)
    check_pairs(pairs_file, loss)  # before any checkpoint is touched or a process started
    if job.relaunch():
        return None
    job.claim()

    from scpo.training.dpo import PairCollator, ScpoTrainer

    ds = loss.prepare(load_pairs(pairs_file))
    tokenizer, model = job.load_model()
    reference = settings.reference
    if reference == "auto":
        reference = "sampler" if sampler_reference_ready(ds) and sampled_by(ds, job.model_path) else "model"
    if reference == "sampler":
        if not sampler_reference_ready(ds):
            raise ScpoError(f"{pairs_file}: reference=sampler needs ref_chosen_logps, ref_rejected_logps, "
                            "chosen_token_ids and rejected_token_ids (sample with save_token_ids: true)")
        if "ref_model" in ds.column_names and not sampled_by(ds, job.model_path):
            raise ScpoError(f"{pairs_file}: sampled by {ds.unique('ref_model')}, not by {job.model_path}; its "
                            "log-probs are not this model's reference (use reference: model)")
        ds = to_sampler_tokens(ds, tokenizer, training_args.max_length, loss.columns)
    else:
        ds = ds.remove_columns([c for c in ds.column_names if c.startswith("ref_")])
    # Our losses read reference log-probs from the batch, so they are always precomputed (or the sampler's).
    training_args.precompute_ref_log_probs = not loss.uses_trl_loss or reference == "sampler" or \
        training_args.precompute_ref_log_probs
    collator = PairCollator(pad_token_id=tokenizer.pad_token_id, max_length=training_args.max_length,
                            truncation_mode=training_args.truncation_mode,
                            pad_to_multiple_of=training_args.pad_to_multiple_of, columns=loss.columns)
    trainer = ScpoTrainer(model=model, args=training_args, train_dataset=ds, processing_class=tokenizer,
                          data_collator=collator, peft_config=job.peft_config(), loss=loss)
    counts = {"pairs": len(ds), "loss_type": settings.loss, "reference": reference}
    if settings.check_ref_logps:
        if trainer.is_deepspeed_enabled:
            raise ScpoError("check_ref_logps runs the model outside DeepSpeed's engine; run the check without "
                            "accelerate_config (one process), then train under DeepSpeed")
        counts["ref_logps_max_abs_diff"] = check_reference(trainer, settings.check_ref_logps)
    job.train(trainer, counts)
    counts["processes"] = trainer.accelerator.num_processes
    counts["deepspeed"] = trainer.is_deepspeed_enabled
    return job.finish(trainer, tokenizer, counts)


def check_reference(trainer, n: int) -> float:
    """Recomputes the first n pairs' reference log-probs with the model; the largest difference per sequence."""
    import torch

    ds = trainer.train_dataset
    if "ref_chosen_logps" not in ds.column_names:
        return 0.0
    rows = [ds[i] for i in range(min(n, len(ds)))]
    batch = trainer._prepare_inputs(trainer.data_collator(rows))
    batch = {k: v for k, v in batch.items() if k not in ("weight", "consistency")}
    with torch.no_grad():
        chosen, rejected = trainer.compute_ref_log_probs(trainer.model, batch)
    diff = torch.cat([(chosen.cpu() - batch["ref_chosen_logps"].cpu()).abs(),
                      (rejected.cpu() - batch["ref_rejected_logps"].cpu()).abs()]).max().item()
    print(f"[train] reference log-probs: sampler vs recomputed, max abs diff per sequence {diff:.3e} over {len(rows)} pairs")
    return round(diff, 6)


def main(argv: list[str]) -> dict | None:
    settings, training_args, model_args = parse(argv)
    return run(settings, training_args, model_args, argv)
