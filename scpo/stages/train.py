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

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scpo.core import trl_keys
from scpo.core.blocks import LaunchBlock, ModelBlock, StageBlock
from scpo.core.errors import ScpoError
from scpo.core.io import read_rows, write_json
from scpo.core.manifest import iter_file, write_manifest
from scpo.core.rows import EVAL_FIELDS
from scpo.core.settings import peek, set_settings, wants_help, with_extensions
from scpo.losses import LOSSES, PairLoss
from scpo.sampling import prompt_ids
from scpo.training.launch import TrlJob, parse_with_trl, trl_help
from scpo.training.selection import selection_dir

PAIR_FIELDS = {"prompt": (str, list), "chosen": (str, list), "rejected": (str, list)}
SAMPLER_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps", "chosen_token_ids", "rejected_token_ids")
SELECT_METRICS = ("greedy", "maj@k")
REFERENCE_ENV = "SCPO_TRAIN_REFERENCE"  # the parent's choice, for the processes accelerate / torchrun start
TRAIN_PHASE_ENV = "SCPO_TRAIN_PHASE"  # set for the child that trains the epochs of a dev selection


@dataclass
class TrainSettings(StageBlock, LaunchBlock, ModelBlock):
    """scpo train: preference training on a pairs file with TRL's DPOTrainer and a pair loss (scpo/losses/)."""

    loss: str = "scpo"  # scpo | irpo | dpo | cream, or a dotted path to a PairLoss subclass
    reference: str = "auto"  # auto: the sampler's log-probs when the pairs carry them, else "model" (TRL precompute)
    check_ref_logps: int = 16  # sampler reference: score this many pairs again with the model before training
    ref_logps_tolerance: float = 0.1  # largest per-token gap (nats) of that check; above it, TRL's reference pass
    pairs_file: str | None = None  # default <iter_dir>/pairs.jsonl
    # ScPO §3: "trained for 10 epochs ... we use accuracy on the dev set for checkpoint selection (at every epoch)"
    select_checkpoint: str = "none"  # none | dev: a checkpoint per epoch, the best on dev_file becomes the model
    dev_file: str | None = None  # dev problems with gold answers (scpo data --split_preset scpo_gsm8k | scpo_math)
    select_metric: str = "greedy"  # greedy | maj@k: the dev metric that picks the epoch (scpo eval's)
    keep_checkpoints: bool = False  # keep the epoch checkpoints (weights) after the selection

    # the check and what is kept on disk do not change the trained model; dev selection joined later
    NOT_HASHED = ("check_ref_logps", "ref_logps_tolerance", "keep_checkpoints")
    HASHED_WHEN_SET = ("select_checkpoint", "dev_file", "select_metric")

    def __post_init__(self):
        super().__post_init__()
        LOSSES.get(self.loss)  # a named error for an unknown loss
        if self.reference not in ("auto", "sampler", "model"):
            raise ScpoError(f"setting reference={self.reference!r}: expected auto, sampler or model")
        if self.select_checkpoint not in ("none", "dev"):
            raise ScpoError(f"setting select_checkpoint={self.select_checkpoint!r}: expected none or dev")
        if self.select_checkpoint == "dev" and not self.dev_file:
            raise ScpoError(
                "setting select_checkpoint=dev needs dev_file: dev problems with gold answers "
                "(e.g. scpo data --source gsm8k --split_preset scpo_gsm8k writes dev.jsonl)"
            )
        if self.select_metric not in SELECT_METRICS:
            raise ScpoError(f"setting select_metric={self.select_metric!r}: expected one of {SELECT_METRICS}")
        if self.check_ref_logps < 0 or self.ref_logps_tolerance <= 0:
            raise ScpoError("settings check_ref_logps >= 0 (0: no check) and ref_logps_tolerance > 0 are required")


SETTINGS = TrainSettings
EXTENSIONS = LOSSES  # each loss's settings are recipe keys of this stage


def run(settings, training_args, model_args, argv: list[str]) -> dict | None:
    # the job: its inputs and config hash; done when its manifest matches
    pairs_file = iter_file(settings.iter_dir, settings.pairs_file, "pairs.jsonl")
    selecting = settings.select_checkpoint == "dev"
    if selecting:  # a checkpoint per epoch, all kept until they are evaluated
        from transformers.trainer_utils import SaveStrategy

        training_args.save_strategy, training_args.save_total_limit = SaveStrategy.EPOCH, None
    job = TrlJob(
        "train",
        settings,
        training_args,
        model_args,
        argv,
        inputs=[pairs_file] + ([settings.dev_file] if selecting else []),
    )
    if (done := job.done()) is not None:
        return done

    # check the loss's options, the pairs and the dev selection before any checkpoint is touched or a process started
    loss = LOSSES.get(settings.loss)(settings)
    check_trl_options(loss, training_args)
    check_pairs(pairs_file, loss)
    if selecting:
        check_selection(settings.dev_file, training_args)

    # the reference: the sampler's log-probs (checked against the model) or TRL's reference pass
    reference = choose_reference(settings, model_args, pairs_file, job)

    # a dev selection: every epoch trained in a child process, each evaluated on dev, the best installed
    if selecting and not os.environ.get(TRAIN_PHASE_ENV):
        return select_on_dev(job, reference)

    # relaunch under accelerate / torchrun when asked; claim the output folder
    if job.relaunch(env={REFERENCE_ENV: json.dumps(reference)}):
        return None
    job.claim()

    # load the pairs and the model; the sampler's exact tokens, or no reference columns for TRL's pass
    from scpo.training.dpo import PairCollator, ScpoTrainer

    ds = loss.prepare(load_pairs(pairs_file))
    tokenizer, model = job.load_model()
    if reference["reference"] == "sampler":
        ds = to_sampler_tokens(ds, tokenizer, training_args.max_length, loss.columns)
    else:
        ds = ds.remove_columns([c for c in ds.column_names if c.startswith("ref_")])
    # Our losses read reference log-probs from the batch, so they are always precomputed (or the sampler's).
    training_args.precompute_ref_log_probs = (
        not loss.uses_trl_loss or reference["reference"] == "sampler" or training_args.precompute_ref_log_probs
    )

    # build the trainer
    collator = PairCollator(
        pad_token_id=tokenizer.pad_token_id,
        max_length=training_args.max_length,
        truncation_mode=training_args.truncation_mode,
        pad_to_multiple_of=training_args.pad_to_multiple_of,
        columns=loss.columns,
    )
    trainer = ScpoTrainer(
        model=model,
        args=training_args,
        train_dataset=ds,
        processing_class=tokenizer,
        data_collator=collator,
        peft_config=job.peft_config(),
        loss=loss,
    )
    counts = {"pairs": len(ds), "loss_type": settings.loss, **reference}
    if selecting:
        from scpo.training.selection import keep_newest_training_state, mark_trained

        trainer.add_callback(keep_newest_training_state(job.output_dir))

    # train
    job.train(trainer, counts)
    counts["processes"] = trainer.accelerator.num_processes
    counts["deepspeed"] = trainer.is_deepspeed_enabled

    # the training phase of a selection: the first process records the counts, the parent evaluates the epochs
    if selecting:
        if trainer.accelerator.is_main_process:
            write_json(selection_dir(job.output_dir) / "train_counts.json", counts)
            mark_trained(job.output_dir, trainer.state.global_step)  # last: marked means both exist
        return None

    # save the model (LoRA merged) and write the manifest
    return job.finish(trainer, tokenizer, counts)


def check_trl_options(loss: PairLoss, args) -> None:
    """TRL options that only its own loss implements; with ours they would be silently ignored."""
    if loss.uses_trl_loss:
        return
    unsupported = {
        "ld_alpha": args.ld_alpha is not None,
        "f_divergence_type": args.f_divergence_type != "reverse_kl",
        "use_weighting": args.use_weighting,
        "label_smoothing": args.label_smoothing != 0,
        "sync_ref_model": args.sync_ref_model,
        "loss_type": list(args.loss_type) != ["sigmoid"],
    }
    bad = [name for name, is_set in unsupported.items() if is_set]
    if bad:
        raise ScpoError(
            f"setting(s) {bad} apply to TRL's own losses only; with loss={loss.name} they would be "
            "ignored. Unset them, or use loss: dpo"
        )


def check_pairs(path: str, loss: PairLoss) -> None:
    """The pairs file's rows, checked for this loss: errors name the file and the fault."""
    rows = read_rows(path, required=PAIR_FIELDS, allow_empty=True)
    if not rows:
        raise ScpoError(f"{path}: no pairs to train on; lower tau or sample more completions per prompt")
    loss.check_rows(rows, path)


def check_selection(dev_file: str, training_args) -> None:
    """A dev selection needs dev problems and whole epochs to pick from."""
    check_dev_file(dev_file)
    epochs = training_args.num_train_epochs
    if not (epochs >= 1 and float(epochs).is_integer()) or training_args.max_steps > 0:
        raise ScpoError(
            f"select_checkpoint=dev picks an epoch: needs a whole num_train_epochs >= 1 (now "
            f"{training_args.num_train_epochs}) and no max_steps (now {training_args.max_steps})"
        )


def check_dev_file(path: str) -> None:
    rows = read_rows(path, required=EVAL_FIELDS, allow_empty=True)
    if not rows:
        raise ScpoError(f"dev_file {path}: no problems; checkpoint selection needs dev problems with gold answers")


def choose_reference(settings, model_args, pairs_file: str, job: TrlJob) -> dict:
    """`reference` (sampler | model) and, for the sampler's log-probs, the check against a forward of the model.

    Decided once, in the first process (before a launch), and handed to the training processes.
    """
    if os.environ.get(REFERENCE_ENV):
        return json.loads(os.environ[REFERENCE_ENV])
    rows = read_rows(pairs_file, required=PAIR_FIELDS)
    reference = settings.reference
    ready = all(all(c in r for c in SAMPLER_COLUMNS) for r in rows)
    if reference == "auto":
        reference = "sampler" if ready and sampled_by(rows, job.model_path) else "model"
    if reference == "sampler":
        if not ready:
            raise ScpoError(
                f"{pairs_file}: reference=sampler needs {', '.join(SAMPLER_COLUMNS)} in every pair "
                "(sample with save_token_ids: true)"
            )
        if any("ref_model" in r for r in rows) and not sampled_by(rows, job.model_path):
            raise ScpoError(
                f"{pairs_file}: sampled by {sorted({str(r.get('ref_model')) for r in rows})}, not by "
                f"{job.model_path}; its log-probs are not this model's reference (use reference: model)"
            )
    out: dict = {"reference": reference}
    if reference == "sampler" and settings.check_ref_logps:
        from scpo.training.reference import reference_gap

        dtype = model_args.dtype if model_args.dtype not in (None, "auto") else "auto"
        gap = reference_gap(rows, job.model_path, dtype=dtype, n=settings.check_ref_logps)
        out["ref_logps_check"] = gap
        print(
            f"[train] sampler reference log-probs vs a forward of {job.model_path} over {gap['sequences']} "
            f"sequences: per-token gap mean {gap['mean_gap_per_token']:.2e}, max {gap['max_gap_per_token']:.2e} "
            f"nats (tolerance {settings.ref_logps_tolerance})"
        )
        if gap["max_gap_per_token"] > settings.ref_logps_tolerance:
            print(
                f"[train] the sampler's log-probs are not this model's (max per-token gap "
                f"{gap['max_gap_per_token']:.3f} > ref_logps_tolerance {settings.ref_logps_tolerance}): falling back "
                "to TRL's reference pass (reference: model); raise ref_logps_tolerance to keep the sampler's",
                file=sys.stderr,
            )
            out["reference"] = "model"
            out["reference_fallback"] = True
    return out


def sampled_by(rows: list[dict], model_path: str) -> bool:
    """Whether every pair was sampled by this very model (then its log-probs are the reference)."""
    models = {r.get("ref_model") for r in rows}
    return None not in models and {str(Path(p).resolve()) for p in models} == {str(Path(model_path).resolve())}


def select_on_dev(job: TrlJob, reference: dict) -> dict | None:
    """Trains every epoch (a child process), evaluates each epoch's checkpoint on the dev split (one `scpo eval`
    process each), installs the best as the model and writes the manifest. Resumable at every step."""
    from scpo.training.launch import merge_lora
    from scpo.training.selection import best, checkpoints, install, is_trained, metric_value

    s = job.settings
    job.check_output()
    first_node = int(s.machine_rank or 0) == 0
    if first_node:
        job.claim()  # another configuration's (or, with --overwrite, any) checkpoints and selection go
        if is_trained(job.output_dir) and not checkpoints(job.output_dir):  # a finished selection, inputs changed
            (selection_dir(job.output_dir) / "trained.json").unlink()
    if not is_trained(job.output_dir):
        job.run_child({REFERENCE_ENV: json.dumps(reference), TRAIN_PHASE_ENV: "1"})
    if not first_node:
        return None  # the first node evaluates and finishes
    found = checkpoints(job.output_dir)
    if not found:
        raise ScpoError(f"{job.output_dir}: training saved no epoch checkpoint (num_train_epochs, save settings?)")
    curve = []
    for checkpoint in found:
        folder = selection_dir(job.output_dir) / f"epoch-{checkpoint['epoch']}"
        model = Path(checkpoint["path"])
        if (model / "adapter_config.json").exists():  # LoRA: vLLM evaluates the merged model
            model = folder / "merged"
            if not (model / "config.json").exists():
                merge_lora(job.model_path, checkpoint["path"], str(model))
        greedy_only = {"eval_k": 0} if s.select_metric == "greedy" else {}  # greedy accuracy needs no samples
        eval_args = set_settings(
            job.argv,
            model=model,
            eval_file=s.dev_file,
            eval_output=folder / "eval.json",
            max_eval_problems="none",
            greedy="true",
            overwrite="false",  # --overwrite redid the training; a finished epoch's evaluation stays
            **greedy_only,
        )
        cmd = [sys.executable, "-m", "scpo.cli", "eval", *eval_args]
        job.log(f"dev evaluation of epoch {checkpoint['epoch']}: {' '.join(cmd[3:])}")
        if subprocess.call(cmd):
            raise ScpoError(f"the dev evaluation of {checkpoint['path']} failed; re-run to resume the selection")
        value = metric_value(json.loads((folder / "eval.json").read_text()), s.select_metric)
        curve.append({**checkpoint, "value": value, "model": str(model)})
        job.log(f"epoch {checkpoint['epoch']}: dev {s.select_metric} {value:.4f}")
    chosen = best(curve)
    installed = install(Path(chosen["model"]), job.output_dir)
    if Path(chosen["model"]) != Path(chosen["path"]):  # LoRA: the adapter beside the merged model, as save() does
        (job.output_dir / "adapter").mkdir(exist_ok=True)
        install(Path(chosen["path"]), job.output_dir / "adapter")
    counts = json.loads((selection_dir(job.output_dir) / "train_counts.json").read_text())
    counts.update(
        select_metric=s.select_metric,
        selected_epoch=chosen["epoch"],
        selected_step=chosen["step"],
        selected_value=chosen["value"],
        installed_files=len(installed),
        dev_curve=[{k: e[k] for k in ("epoch", "step", "value")} for e in curve],
    )
    job.log(f"selected epoch {chosen['epoch']} (dev {s.select_metric} {chosen['value']:.4f}) of {len(curve)}")
    manifest = write_manifest(str(job.output_dir), "train", job.config, job.inputs, counts, job.started)
    if not s.keep_checkpoints:  # after the manifest: a kill here leaves extra files, never a lost selection
        for checkpoint in found:
            shutil.rmtree(checkpoint["path"], ignore_errors=True)
            shutil.rmtree(selection_dir(job.output_dir) / f"epoch-{checkpoint['epoch']}" / "merged", ignore_errors=True)
    return manifest


def load_pairs(path: str):
    """The pairs as a `datasets.Dataset`, loaded from the file (not from memory) so it has cache files: TRL's
    reference precompute writes its cache next to them on rank 0 and every rank reads the same file."""
    import datasets

    datasets.disable_progress_bars()
    kind = "parquet" if str(path).endswith(".parquet") else "json"
    return datasets.load_dataset(kind, data_files=str(path), split="train")


def to_sampler_tokens(ds, tokenizer, max_length: int | None = None, columns: tuple[str, ...] = ()):
    """Exact training tokens: the chat-templated prompt and the sampled completion token ids.

    Pairs longer than max_length are dropped: cutting them would score fewer tokens under the policy
    than the sampler's reference log-probs cover, and the margin would be wrong.
    """

    def tokenize(row):
        ids = prompt_ids(tokenizer, row["prompt"])  # chat messages, or plain text (a task without a chat template)
        return {"prompt_ids": ids, "chosen_ids": row["chosen_token_ids"], "rejected_ids": row["rejected_token_ids"]}

    keep = {*columns, "ref_chosen_logps", "ref_rejected_logps"}
    ds = ds.map(tokenize, remove_columns=[c for c in ds.column_names if c not in keep])
    if max_length:
        before = len(ds)
        ds = ds.filter(lambda r: len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"])) <= max_length)
        if len(ds) < before:
            print(
                f"[train] dropped {before - len(ds)} of {before} pairs longer than max_length={max_length}",
                file=sys.stderr,
            )
        if not len(ds):
            raise ScpoError(f"every pair is longer than max_length={max_length}: raise max_length")
    return ds


def parse(argv: list[str]):
    """(TrainSettings with every loss's block, DPOConfig, ModelConfig) from a recipe and overrides, through TRL's parser."""
    settings = with_extensions(TrainSettings, LOSSES, peek(argv, "loss"))
    if wants_help(argv):
        raise trl_help(settings, {"DPOConfig": trl_keys.DPO_CONFIG, "ModelConfig": trl_keys.MODEL_CONFIG})
    from trl import DPOConfig, ModelConfig

    return parse_with_trl(argv, (settings, DPOConfig, ModelConfig))


def main(argv: list[str]) -> dict | None:
    settings, training_args, model_args = parse(argv)
    return run(settings, training_args, model_args, argv)
