"""`scpo train`: preference training on a pairs file with TRL, under accelerate (+ DeepSpeed ZeRO), with LoRA.

    scpo train --config recipe.yaml --pairs_file pairs.jsonl --output_dir out [--accelerate_config zero2]

Settings: this stage's own (below), every `DPOConfig` field and every `ModelConfig` field (LoRA:
`use_peft`, `lora_r`, ...), from the recipe and the command line. With `accelerate_config` set
(cpu, ddp, zero2, zero3, zero3_offload, or a path), the stage relaunches itself through
`accelerate launch`. The saved folder (a merged copy for LoRA, the adapter in `adapter/`) is what
the next iteration's vLLM loads.

Reference log-probs: pairs sampled by the reference model carry its log-probs and exact token ids
(`reference: sampler`, chosen automatically): no reference forward pass at all. Otherwise TRL's
`precompute_ref_log_probs` runs the reference once before training.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from scpo.errors import ScpoError
from scpo.settings import _accepts_list, _per_iteration, check_keys, load_recipe, split_argv
from scpo.stages.common import iter_file

ACCELERATE_DIR = Path(__file__).resolve().parents[2] / "recipes" / "accelerate"
LAUNCHED_ENV = "SCPO_UNDER_ACCELERATE"


@dataclass
class TrainSettings:
    model: str = "embedded"
    loss: str = "scpo"  # scpo | irpo | dpo | cream
    alpha: float = 1.0  # weight of the length-normalised NLL term (scpo, irpo)
    cream_consistency: str = "dyn"  # cream: each pair's own C ("dyn") or the dataset mean C for every pair ("avg")
    reference: str = "auto"  # auto: the sampler's log-probs when the pairs carry them, else "model" (TRL precompute)
    check_ref_logps: int = 0  # recompute this many pairs' reference log-probs and report the difference
    iter_dir: str | None = None
    pairs_file: str | None = None
    accelerate_config: str | None = None
    num_processes: int | None = None
    num_machines: int | None = None
    machine_rank: int | None = None
    main_process_ip: str | None = None
    main_process_port: int | None = None
    merge_lora: bool = True
    iteration: int = 0
    overwrite: bool = False

    def __post_init__(self):
        from scpo.losses import LOSSES

        if self.loss not in LOSSES:
            raise ScpoError(f"setting loss={self.loss!r}: expected one of {LOSSES}")
        if self.reference not in ("auto", "sampler", "model"):
            raise ScpoError(f"setting reference={self.reference!r}: expected auto, sampler or model")
        if self.cream_consistency not in ("dyn", "avg"):
            raise ScpoError(f"setting cream_consistency={self.cream_consistency!r}: expected dyn or avg")


def accelerate_config_path(name: str) -> Path:
    path = Path(name)
    if not path.suffix:
        path = ACCELERATE_DIR / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in ACCELERATE_DIR.glob("*.yaml")))
        raise ScpoError(f"accelerate_config {name!r}: {path} does not exist (built in: {known})")
    return path


def launch_command(s: TrainSettings, argv: list[str], command: str = "train") -> list[str]:
    """The `accelerate launch` command that runs this stage (`scpo <command>`) under the chosen config.

    Several CPU processes go through torchrun instead: for a CPU config `accelerate launch` expects
    mpirun and otherwise starts a single process.
    """
    config = accelerate_config_path(s.accelerate_config)
    if (s.num_processes or 1) > 1 and (yaml.safe_load(config.read_text()) or {}).get("use_cpu"):
        machines = s.num_machines or 1
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(s.num_processes // machines),
                "--nnodes", str(machines), "--node_rank", str(s.machine_rank or 0),
                "--master_addr", s.main_process_ip or "127.0.0.1", "--master_port", str(s.main_process_port or 29500),
                "-m", "scpo.cli", command, *argv]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    for flag in ("num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port"):
        value = getattr(s, flag)
        if value is not None:
            cmd += [f"--{flag}", str(value)]
    if not _has_gpu():
        cmd += ["--mixed_precision", "no"]  # the configs say bf16 for GPUs; on CPU training runs in float32
    return cmd + ["-m", "scpo.cli", command, *argv]


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def parse(argv: list[str]):
    """(TrainSettings, DPOConfig, ModelConfig) from a recipe and overrides, through TRL's own parser."""
    from trl import DPOConfig, ModelConfig

    return parse_with_trl(argv, (TrainSettings, DPOConfig, ModelConfig))


def parse_with_trl(argv: list[str], classes: tuple, adjust=None) -> tuple:
    """Our settings dataclass and TRL's config classes from a recipe and overrides, through TRL's own parser.

    `adjust(values)` may edit the merged values (recipe and command line) before TRL's classes see them.
    """
    from trl import TrlParser

    config_path, cli = split_argv(argv)
    recipe = load_recipe(config_path)
    hints: dict[str, typing.Any] = {}
    for cls in classes:
        hints.update({f.name: f.type for f in dataclasses.fields(cls)})
        try:
            hints.update(typing.get_type_hints(cls))
        except Exception:  # some TRL annotations do not resolve; the raw ones are enough here
            pass
    mine = set(hints)
    check_keys(set(recipe), mine, f"recipe {config_path}")
    check_keys(set(cli), mine, "the command line")
    iteration = int(cli.get("iteration", recipe.get("iteration", 0)) or 0)
    ours = {k: _per_iteration(k, v, hints[k], iteration) for k, v in recipe.items() if k in mine}
    if not _has_gpu():  # DPOConfig defaults to bf16 and refuses it on CPU
        if str(cli.get("bf16", ours.get("bf16", False))).lower() == "true":
            print("[train] no GPU: bf16 off, training in float32", file=sys.stderr)
        ours["bf16"] = False
        cli.pop("bf16", None)
    # Command-line values join the YAML that TrlParser reads (argparse still converts string values);
    # "a,b" becomes a list for list-typed fields (report_to, lora_target_modules, loss_type).
    for key, value in cli.items():
        if key not in mine:
            continue
        value = _per_iteration(key, value, hints[key], iteration)
        if isinstance(value, str) and "," in value and _accepts_list(hints[key]):
            value = [v for v in value.split(",") if v]
        ours[key] = value
    if adjust is not None:
        adjust(ours)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(ours, f)
    try:
        parser = TrlParser(classes)
        try:
            return tuple(parser.parse_args_and_config(args=["--config", f.name]))
        except SystemExit as e:
            raise ScpoError(f"invalid training settings (see the message above), exit {e.code}") from None
    finally:
        os.unlink(f.name)


def load_pairs(path: str, loss: str):
    """Loads and checks a pairs file with `datasets`; errors name the file and the fault."""
    import datasets

    from scpo.io import read_rows

    rows = read_rows(path, required={"prompt": (str, list), "chosen": (str, list), "rejected": (str, list)},
                     allow_empty=True)
    if not rows:
        raise ScpoError(f"{path}: no pairs to train on; lower tau or sample more completions per prompt")
    if loss == "scpo":
        for i, row in enumerate(rows, 1):
            w = row.get("weight")
            if not isinstance(w, (int, float)) or isinstance(w, bool):
                raise ScpoError(f"{path}:{i}: the scpo loss needs a numeric 'weight' (got {w!r})")
            if not 0 <= w <= 1:
                raise ScpoError(f"{path}:{i}: weight {w} is outside [0, 1]")
        if not any(row["weight"] > 0 for row in rows):
            raise ScpoError(f"{path}: every pair has weight 0 (all votes tied): nothing to learn; "
                            "lower tau or sample more completions per prompt")
    if loss == "cream" and any(not isinstance(r.get("consistency"), (int, float)) for r in rows):
        raise ScpoError(f"{path}: the cream loss needs a numeric 'consistency' column in every row")
    datasets.disable_progress_bars()
    # Loaded from the file (not from memory) so the dataset has cache files: TRL's reference precompute
    # writes its cache next to them on rank 0 and every rank reads the same file.
    kind = "parquet" if str(path).endswith(".parquet") else "json"
    return datasets.load_dataset(kind, data_files=str(path), split="train")


def average_consistency(ds):
    """CREAM-avg: every pair gets the dataset's mean consistency C instead of its own."""
    mean = sum(ds["consistency"]) / len(ds)
    print(f"[train] cream_consistency=avg: C = {mean:.4f} for all {len(ds)} pairs")
    return ds.map(lambda row: {"consistency": mean})


def sampler_reference_ready(ds) -> bool:
    return all(c in ds.column_names for c in
               ("ref_chosen_logps", "ref_rejected_logps", "chosen_token_ids", "rejected_token_ids"))


def sampled_by(ds, model_path: str) -> bool:
    """Whether every pair was sampled by this very model (then its log-probs are the reference)."""
    if "ref_model" not in ds.column_names:
        return False
    return {str(Path(p).resolve()) for p in ds.unique("ref_model")} == {str(Path(model_path).resolve())}


def check_trl_options(loss: str, args) -> None:
    """TRL options that only its own loss implements; with ours they would be silently ignored."""
    if loss == "dpo":
        return
    unsupported = {"ld_alpha": args.ld_alpha is not None, "f_divergence_type": args.f_divergence_type != "reverse_kl",
                   "use_weighting": args.use_weighting, "label_smoothing": args.label_smoothing != 0,
                   "sync_ref_model": args.sync_ref_model, "loss_type": list(args.loss_type) != ["sigmoid"]}
    bad = [name for name, is_set in unsupported.items() if is_set]
    if bad:
        raise ScpoError(f"setting(s) {bad} apply to TRL's own losses only; with loss={loss} they would be "
                        "ignored. Unset them, or use loss: dpo")


def to_sampler_tokens(ds, tokenizer, max_length: int | None = None):
    """Exact training tokens: the chat-templated prompt and the sampled completion token ids.

    Pairs longer than max_length are dropped: cutting them would score fewer tokens under the policy
    than the sampler's reference log-probs cover, and the margin would be wrong.
    """
    def tokenize(row):
        messages = row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        return {"prompt_ids": ids, "chosen_ids": row["chosen_token_ids"], "rejected_ids": row["rejected_token_ids"]}

    keep = {"weight", "consistency", "ref_chosen_logps", "ref_rejected_logps"}
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


def run(settings: TrainSettings, training_args, model_args, argv: list[str]) -> dict | None:
    from scpo.manifest import is_done
    from scpo.stages.model import resolve_model

    pairs_file = iter_file(settings.iter_dir, settings.pairs_file, "pairs.jsonl")
    if settings.iter_dir and training_args.output_dir in (None, "", "trainer_output"):
        training_args.output_dir = str(Path(settings.iter_dir) / "model")
    output_dir = training_args.output_dir
    model_path = resolve_model(settings.model)
    config = {"settings": dataclasses.asdict(settings), "model": model_path,
              "training": {k: v for k, v in training_args.to_dict().items() if "dir" not in k and "token" not in k},
              "model_args": dataclasses.asdict(model_args)}
    for key in ("iter_dir", "pairs_file", "accelerate_config", "num_processes", "num_machines", "machine_rank",
                "main_process_ip", "main_process_port", "overwrite"):
        config["settings"].pop(key, None)
    if not settings.overwrite and (done := is_done(output_dir, config, [pairs_file])):
        print(f"[train] {output_dir} is up to date ({done['counts']}); skipping")
        return done
    if settings.accelerate_config and not os.environ.get(LAUNCHED_ENV):
        accelerate_config_path(settings.accelerate_config)
        load_pairs(pairs_file, settings.loss)  # fail fast, before starting processes
        cmd = launch_command(settings, argv)
        print(f"[train] {' '.join(cmd)}")
        torchrun = "torch.distributed.run" in cmd  # several CPU processes: tell accelerate they are CPU (gloo)
        code = subprocess.call(cmd, env={**os.environ, LAUNCHED_ENV: "1",
                                         **({"ACCELERATE_USE_CPU": "true"} if torchrun else {})})
        if code:
            raise ScpoError(f"training exited with code {code}; re-run to resume from the last checkpoint")
        return None
    return train(settings, training_args, model_args, model_path, pairs_file, config)


def train(settings, training_args, model_args, model_path: str, pairs_file: str, config: dict) -> dict | None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import get_peft_config

    from scpo.io import config_digest
    from scpo.manifest import write_manifest
    from scpo.trainer import ScpoTrainer

    started = time.time()
    if int(os.environ.get("RANK", "0")) == 0:
        claim_output_dir(Path(training_args.output_dir), config_digest(config), settings.overwrite)
    if not torch.cuda.is_available() and (training_args.bf16 or training_args.fp16):
        print("[train] no GPU: training in float32 (bf16/fp16 off)", file=sys.stderr)
        training_args.bf16 = training_args.fp16 = False
    check_trl_options(settings.loss, training_args)
    ds = load_pairs(pairs_file, settings.loss)
    if settings.loss == "cream" and settings.cream_consistency == "avg":
        ds = average_consistency(ds)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    reference = settings.reference
    if reference == "auto":
        reference = "sampler" if sampler_reference_ready(ds) and sampled_by(ds, model_path) else "model"
    if reference == "sampler":
        if not sampler_reference_ready(ds):
            raise ScpoError(f"{pairs_file}: reference=sampler needs ref_chosen_logps, ref_rejected_logps, "
                            "chosen_token_ids and rejected_token_ids (sample with save_token_ids: true)")
        if "ref_model" in ds.column_names and not sampled_by(ds, model_path):
            raise ScpoError(f"{pairs_file}: sampled by {ds.unique('ref_model')}, not by {model_path}; its log-probs "
                            "are not this model's reference (use reference: model)")
        ds = to_sampler_tokens(ds, tokenizer, training_args.max_length)
    else:
        ds = ds.remove_columns([c for c in ds.column_names if c.startswith("ref_")])
    # Our losses read reference log-probs from the batch, so they are always precomputed (or the sampler's).
    training_args.precompute_ref_log_probs = settings.loss != "dpo" or reference == "sampler" or \
        training_args.precompute_ref_log_probs
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype or "auto",
                                                 attn_implementation=model_args.attn_implementation)
    from scpo.trainer import PairCollator

    collator = PairCollator(pad_token_id=tokenizer.pad_token_id, max_length=training_args.max_length,
                            truncation_mode=training_args.truncation_mode,
                            pad_to_multiple_of=training_args.pad_to_multiple_of)
    trainer = ScpoTrainer(model=model, args=training_args, train_dataset=ds, processing_class=tokenizer,
                          data_collator=collator, peft_config=get_peft_config(model_args),
                          loss=settings.loss, alpha=settings.alpha)
    counts = {"pairs": len(ds), "loss_type": settings.loss, "reference": reference}
    if settings.check_ref_logps:
        if trainer.is_deepspeed_enabled:
            raise ScpoError("check_ref_logps runs the model outside DeepSpeed's engine; run the check without "
                            "accelerate_config (one process), then train under DeepSpeed")
        counts["ref_logps_max_abs_diff"] = check_reference(trainer, settings.check_ref_logps)
    trainer.accelerator.wait_for_everyone()  # rank 0 has cleared checkpoints of another configuration
    last = get_last_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
    if last:
        print(f"[train] resuming from {last}")
    counts["resumed_from_step"] = int(last.rsplit("-", 1)[-1]) if last else 0
    result = trainer.train(resume_from_checkpoint=last)
    counts["global_step"] = trainer.state.global_step
    counts["processes"] = trainer.accelerator.num_processes
    counts["deepspeed"] = trainer.is_deepspeed_enabled
    last_logged = next((e for e in reversed(trainer.state.log_history) if "loss" in e), {})
    for key, value in {**last_logged, **result.metrics}.items():
        if isinstance(value, (int, float)):
            counts[key] = round(value, 6)
    save(trainer, tokenizer, training_args.output_dir, model_args.use_peft and settings.merge_lora, model_path)
    if trainer.accelerator.is_main_process:
        manifest = write_manifest(training_args.output_dir, "train", config, [pairs_file], counts, started)
        print(f"[train] {training_args.output_dir}: {counts}")
        return manifest
    return None


def claim_output_dir(output_dir: Path, digest: str, overwrite: bool) -> None:
    """Checkpoints in output_dir are resumed only if they belong to this configuration; others are removed."""
    import shutil

    stamp = output_dir / ".scpo-train-config"
    if overwrite or not stamp.exists() or stamp.read_text().strip() != digest:
        for old in output_dir.glob("checkpoint-*"):
            shutil.rmtree(old, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")


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


def save(trainer, tokenizer, output_dir: str, merge: bool, base_model: str) -> None:
    """A full model folder at output_dir (for LoRA: merged, with the adapter kept in output_dir/adapter)."""
    if not merge:
        trainer.save_model(output_dir)
        if trainer.accelerator.is_main_process:
            tokenizer.save_pretrained(output_dir)
        return
    adapter_dir = str(Path(output_dir) / "adapter")
    trainer.save_model(adapter_dir)  # gathers the adapter under ZeRO-3
    if trainer.accelerator.is_main_process:
        # Merge from the saved adapter into a fresh CPU copy of the base: the training copy may be sharded.
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(base_model, dtype=trainer.model.dtype)
        merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
        merged.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)
    trainer.accelerator.wait_for_everyone()


def main(argv: list[str]) -> dict | None:
    settings, training_args, model_args = parse(argv)
    return run(settings, training_args, model_args, argv)
