"""The TRL launcher shared by `scpo train` and `scpo grpo`: settings through TRL's parser, skip-if-done,
relaunch under accelerate / torchrun, output folder and checkpoints, resume, save (LoRA merged), manifest.

A stage reads top to bottom around one `TrlJob`:

    job = TrlJob("train", settings, args, model_args, argv, inputs=[pairs_file])
    if (done := job.done()) is not None: return done       # a matching manifest: nothing to do
    ...validate the inputs...                                # before anything is deleted or started
    if job.relaunch(): return None                           # accelerate_config: the real run was a child
    job.claim()                                              # this configuration's output folder
    trainer = ...                                            # the stage's own TRL trainer
    job.train(trainer, counts)                               # resumes from the last checkpoint
    return job.finish(trainer, tokenizer, counts)            # saves the model and the manifest

With `accelerate_config` set (cpu, ddp, zero2, zero3, zero3_offload, or a path) the stage runs
itself again under `accelerate launch`; several CPU processes start under torchrun instead (for a CPU
config `accelerate launch` expects mpirun and otherwise starts a single process). On a machine
without a GPU, precision is settled once, when the settings are parsed (`cpu_precision`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

import yaml

from scpo.core import trl_keys
from scpo.core.blocks import LAUNCH_KEYS, MAIN_PROCESS_PORT
from scpo.core.devices import has_gpu
from scpo.core.errors import HelpRequested, ScpoError
from scpo.core.io import config_digest
from scpo.core.manifest import is_done, write_manifest
from scpo.core.models import resolve_model
from scpo.core.settings import (
    accepts_list,
    check_bare,
    check_keys,
    help_text,
    load_recipe,
    optional,
    per_iteration,
    split_argv,
)

ACCELERATE_DIR = Path(__file__).resolve().parents[2] / "recipes" / "accelerate"
LAUNCHED_ENV = "SCPO_UNDER_ACCELERATE"
# Settings that say where or how to run, not what is trained: left out of the stage's config hash.
NOT_HASHED = ("iter_dir", "pairs_file", "overwrite", *LAUNCH_KEYS)
# TrainingArguments that only name or log the run (its W&B/TensorBoard name, where and how often it logs, progress
# bars), left out of the config hash beside every *_dir and *token: a renamed run resumes instead of retraining.
LOG_ONLY_KEYS = ("run_name", "report_to", "disable_tqdm", "log_level", "log_on_each_node", "logging_")
STAMP = ".scpo-train-config"  # in an output folder: scpo wrote it, for the configuration whose hash it holds


def hashed_training(training: dict) -> dict:
    """The TrainingArguments that decide the trained model: all but paths, tokens and LOG_ONLY_KEYS."""
    return {
        k: v for k, v in training.items() if "dir" not in k and "token" not in k and not k.startswith(LOG_ONLY_KEYS)
    }


def hashed_config(config: dict) -> dict:
    """A saved manifest's config as this version hashes it (manifests written before LOG_ONLY_KEYS still match)."""
    return {**config, "training": hashed_training(config.get("training", {}))}


def accelerate_config_path(name: str) -> Path:
    path = Path(name)
    if not path.suffix:
        path = ACCELERATE_DIR / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in ACCELERATE_DIR.glob("*.yaml")))
        raise ScpoError(f"accelerate_config {name!r}: {path} does not exist (built in: {known})")
    return path


def launch_command(s, argv: list[str], command: str = "train") -> list[str]:
    """The `accelerate launch` (or, for several CPU processes, torchrun) command that runs `scpo <command>`."""
    config = accelerate_config_path(s.accelerate_config)
    if (s.num_processes or 1) > 1 and (yaml.safe_load(config.read_text()) or {}).get("use_cpu"):
        machines = s.num_machines or 1
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(s.num_processes // machines),
            "--nnodes",
            str(machines),
            "--node_rank",
            str(s.machine_rank or 0),
            "--master_addr",
            s.main_process_ip or "127.0.0.1",
            "--master_port",
            str(s.main_process_port or MAIN_PROCESS_PORT),
            "-m",
            "scpo.cli",
            command,
            *argv,
        ]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    for flag in ("num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port"):
        value = getattr(s, flag)
        if value is not None:
            cmd += [f"--{flag}", str(value)]
    if not has_gpu():
        cmd += ["--mixed_precision", "no"]  # the configs say bf16 for GPUs; on CPU training runs in float32
    return cmd + ["-m", "scpo.cli", command, *argv]


def trl_help(settings: type, trl_fields: dict[str, frozenset]) -> HelpRequested:
    """`--help` of a TRL stage: our settings with defaults and help, then TRL's field names (from data: no TRL import)."""
    import textwrap

    text = help_text(settings, settings.__doc__ or settings.__name__)
    for name, fields in trl_fields.items():
        names = textwrap.fill(", ".join(sorted(fields)), width=110, initial_indent="  ", subsequent_indent="  ")
        text += f"\n\nTRL's {name} fields are settings too (defaults as TRL {trl_keys.TRL_VERSION} documents them):\n{names}"
    return HelpRequested(text)


def parse_with_trl(
    argv: list[str], classes: tuple, adjust=None, stage: str = "train", prefix: str | None = None
) -> tuple:
    """Our settings dataclass and TRL's config classes from a recipe and overrides, through TRL's own parser.

    `adjust(values)` may edit the merged values (recipe and command line) before TRL's classes see them. With
    `prefix` ("sft_"), a key `<prefix><name>` sets TRL's `<name>` for this stage only, over a plain `<name>`
    (one flat recipe holds the DPO and the SFT learning rates: learning_rate and sft_learning_rate).
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
    ours = {k: per_iteration(k, v, hints[k], iteration) for k, v in recipe.items() if k in mine}
    if not has_gpu():
        cpu_precision(ours, cli, stage)
    # Command-line values join the YAML that TrlParser reads (argparse still converts string values);
    # "a,b" becomes a list for list-typed fields (report_to, lora_target_modules, loss_type).
    for key, value in cli.items():
        if key not in mine:
            continue
        value = check_bare(key, value, hints[key])
        value = per_iteration(key, value, hints[key], iteration)
        if isinstance(value, str) and "," in value and accepts_list(hints[key]):
            value = [v for v in value.split(",") if v]
        ours[key] = value
    if prefix:
        for source in (recipe, cli):  # the command line wins over the recipe, a prefixed key over a plain one
            for key, value in source.items():
                name = key[len(prefix) :]
                if key.startswith(prefix) and name in mine and key not in mine:
                    value = check_bare(key, value, hints[name])
                    if source is recipe and name in cli:
                        continue
                    ours[name] = per_iteration(key, value, hints[name], iteration)
    own = {f.name for f in dataclasses.fields(classes[0])}
    for key, value in ours.items():  # "none" for one of our optional settings is None, as in every other stage
        if key in own and isinstance(value, str) and value.lower() in ("none", "null") and optional(hints[key]):
            ours[key] = None
    if adjust is not None:
        adjust(ours)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(ours, f)
    try:
        parser = TrlParser(classes)
        try:
            parsed = tuple(parser.parse_args_and_config(args=["--config", f.name]))
        except SystemExit as e:
            raise ScpoError(f"invalid training settings (see the message above), exit {e.code}") from None
        check_finite(parsed)
        return parsed
    finally:
        os.unlink(f.name)


def check_finite(parsed: tuple) -> None:
    """NaN or an infinity in any float setting (TRL's learning_rate, reward_weights, ...) is refused: NaN compares
    false with everything, so a run would train on without an error."""
    for obj in parsed:
        for f in dataclasses.fields(obj) if dataclasses.is_dataclass(obj) else ():
            value = getattr(obj, f.name, None)
            values = value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise ScpoError(f"setting {f.name}={value}: expected finite numbers (no nan or inf)")


def cpu_precision(ours: dict, cli: dict, stage: str) -> None:
    """Training precision without a GPU, set in `ours` (and taken out of `cli`). TRL's configs default to bf16, which
    transformers refuses on CPU unless `use_cpu` is set: training runs in float32 unless the recipe asks for
    `bf16: true`. Then, on a CPU that computes bf16 natively (AVX512-BF16 or AMX) and without accelerate_config,
    it runs under torch's CPU bf16 autocast (float32 weights and optimizer, matmuls in bf16): measured 1.5x faster
    per scpo DPO step on the embedded model, per-token log-probs within 0.03 of float32 (benchmarks/bench_train.py).
    Elsewhere bf16 would be emulated (slower than float32) or left to DeepSpeed's own bf16 mode, so it is turned
    off. fp16 is always off on CPU."""
    from scpo.core.devices import cpu_has_bf16

    def asked(flag: str) -> bool:
        return str(cli.pop(flag, ours.get(flag, False))).lower() == "true"

    bf16, fp16 = asked("bf16"), asked("fp16")
    launched = cli.get("accelerate_config", ours.get("accelerate_config")) not in (None, "", "none", "null")
    autocast = bf16 and cpu_has_bf16() and not launched
    if bf16 and not autocast:
        why = "under accelerate_config" if launched else "this CPU has no native bf16 (AVX512-BF16 / AMX)"
        print(f"[{stage}] no GPU: bf16 off ({why}), training in float32", file=sys.stderr)
    elif autocast:
        print(
            f"[{stage}] no GPU: bf16 autocast on this CPU's native bf16 (bf16: false trains in float32)",
            file=sys.stderr,
        )
    if fp16:
        print(f"[{stage}] no GPU: fp16 off, training in float32", file=sys.stderr)
    ours.update(bf16=autocast, fp16=False)
    if autocast:
        ours["use_cpu"] = True  # transformers accepts bf16 without a GPU only when told it trains on the CPU


LOW_MEMORY = 0.15  # the share of the machine's memory left available below which a step hands freed memory back


def release_freed_memory_callback():
    """A callback: the training process hands its freed heap back to the OS (scpo/core/memory.py keeps it, for the
    sampler's speed) before a checkpoint or an evaluation, and after a step or a gradient-accumulation micro-batch
    that leaves less than LOW_MEMORY of the machine available. Measured: half of a 0.5B trainer's 22.9 GB was freed
    heap, and the heap's growth got it OOM-killed while it wrote a checkpoint on a 24 GB box; the 0.5B TTRL trainer
    under bf16 autocast grew from 16 to 22.8 GB within one step of four micro-batches (one malloc_trim: 16.1 GB)."""
    from transformers import TrainerCallback

    from scpo.core.memory import available_fraction, release_freed_memory

    class ReleaseFreedMemory(TrainerCallback):  # runs after DefaultFlowCallback, which sets should_save / _evaluate
        def on_step_end(self, args, state, control, **kwargs):
            if control.should_save or control.should_evaluate or available_fraction() < LOW_MEMORY:
                release_freed_memory()
            return control

        def on_substep_end(self, args, state, control, **kwargs):  # a micro-batch of gradient accumulation
            if available_fraction() < LOW_MEMORY:
                release_freed_memory()
            return control

        def on_epoch_end(self, args, state, control, **kwargs):  # save_strategy / eval_strategy "epoch"
            if control.should_save or control.should_evaluate:
                release_freed_memory()
            return control

    return ReleaseFreedMemory()


def complete_checkpoint(folder: Path) -> bool:
    """A checkpoint folder the trainer finished writing: transformers writes trainer_state.json after the weights,
    optimizer, scheduler and RNG states (Trainer._save_checkpoint), so a folder without a readable one was cut short
    by a kill (the end of a sitting, the OOM killer) and cannot be resumed from."""
    try:
        return isinstance(json.loads((folder / "trainer_state.json").read_text()), dict)
    except (OSError, ValueError):
        return False


class TrlJob:
    """One `scpo train` / `scpo grpo` run: its config hash, output folder, launch, resume and manifest."""

    def __init__(self, stage: str, settings, args, model_args, argv: list[str], inputs: list[str]):
        self.stage, self.settings, self.args, self.model_args, self.argv = stage, settings, args, model_args, argv
        self.inputs = inputs
        if settings.iter_dir and args.output_dir in (None, "", "trainer_output"):
            args.output_dir = str(Path(settings.iter_dir) / "model")
        self.output_dir = Path(args.output_dir)
        self.model_path = resolve_model(settings.model)
        self.config = {
            "settings": settings.hashed(leave_out=NOT_HASHED),
            "model": self.model_path,
            "training": hashed_training(args.to_dict()),
            "model_args": dataclasses.asdict(model_args),
        }
        self.started = time.time()
        self.resumed_from: str | None = None

    def log(self, message: str) -> None:
        print(f"[{self.stage}] {message}")

    def done(self) -> dict | None:
        """The manifest of a finished run with this very config and inputs, if there is one."""
        if self.settings.overwrite:
            return None
        done = is_done(str(self.output_dir), self.config, self.inputs, normalize=hashed_config)
        if done is not None:
            self.log(f"{self.output_dir} is up to date ({done['counts']}); skipping")
        return done

    def check_output(self) -> None:
        """The output folder may be written: not the model being trained, and not a folder of someone else's files
        (scpo marks its own with a config stamp; `--overwrite` takes any folder)."""
        if self.output_dir.resolve() == Path(self.model_path).resolve():
            raise ScpoError(
                f"setting output_dir={self.output_dir}: it is the model being trained ({self.model_path}); "
                "write the trained model to another folder"
            )
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ScpoError(f"setting output_dir={self.output_dir}: is a file; give a folder")
        existing = next(d for d in [self.output_dir, *self.output_dir.parents] if d.exists())
        if not os.access(existing, os.W_OK | os.X_OK):  # a read-only place: named before any training
            raise ScpoError(f"setting output_dir={self.output_dir}: cannot write in {existing}; choose another folder")
        if self.settings.overwrite or not self.output_dir.is_dir() or (self.output_dir / STAMP).exists():
            return
        foreign = sorted(p.name for p in self.output_dir.iterdir() if not p.name.startswith("."))
        if foreign:
            raise ScpoError(
                f"setting output_dir={self.output_dir}: the folder holds files scpo did not write "
                f"({', '.join(foreign[:4])}{', ...' if len(foreign) > 4 else ''}); choose an empty or new "
                "folder, or pass --overwrite to replace them"
            )

    def relaunch(self, env: dict[str, str] | None = None) -> bool:
        """Checks the output folder; under `accelerate_config`, runs this stage again under accelerate / torchrun
        (with `env` added: what the first process decided), and returns True once it has."""
        self.check_output()
        if not self.settings.accelerate_config or os.environ.get(LAUNCHED_ENV):
            return False
        self.run_child(env or {})
        return True

    def run_child(self, env: dict[str, str]) -> None:
        """This stage again in child processes (under accelerate / torchrun when `accelerate_config` is set, else
        one plain process), with `env` added; a named error if they fail."""
        s = self.settings
        if s.accelerate_config:
            accelerate_config_path(s.accelerate_config)
            cmd = launch_command(s, self.argv, command=self.stage)
        else:
            cmd = [sys.executable, "-m", "scpo.cli", self.stage, *self.argv]
        torchrun = "torch.distributed.run" in cmd  # several CPU processes: tell accelerate they are CPU (gloo)
        self.log(" ".join(cmd))
        code = subprocess.call(
            cmd, env={**os.environ, **env, LAUNCHED_ENV: "1", **({"ACCELERATE_USE_CPU": "true"} if torchrun else {})}
        )
        if code:
            raise ScpoError(f"{self.stage} exited with code {code}; re-run to resume from the last checkpoint")

    def claim(self) -> None:
        """The output folder is this configuration's (rank 0): checkpoints this stage wrote for another configuration
        are removed, those of this one kept for resuming.

        Called after the inputs and the folder were checked, so a bad input never costs a checkpoint.
        """
        if int(os.environ.get("RANK", "0")) != 0:
            return
        import shutil

        stamp = self.output_dir / STAMP
        digest = config_digest(self.config)
        ours = stamp.exists()
        if self.settings.overwrite or (ours and stamp.read_text().strip() != digest):
            for old in [*self.output_dir.glob("checkpoint-*"), self.output_dir / "selection"]:  # dev selection's too
                shutil.rmtree(old, ignore_errors=True)
        for cut in (c for c in self.output_dir.glob("checkpoint-*") if c.is_dir() and not complete_checkpoint(c)):
            self.log(f"removing {cut}: the run was killed while writing it (no readable trainer_state.json)")
            shutil.rmtree(cut, ignore_errors=True)  # resuming from it would fail on every re-run
        self.output_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest + "\n")

    def load_model(self):
        """The tokenizer (with a pad token) and the model, as `model_args` asks (dtype, attention)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = self.model_args.dtype
        dtype = dtype if dtype in (None, "auto") else getattr(torch, dtype)
        model = AutoModelForCausalLM.from_pretrained(
            self.model_path, dtype=dtype or "auto", attn_implementation=self.model_args.attn_implementation
        )
        return tokenizer, model

    def peft_config(self):
        from trl import get_peft_config

        return get_peft_config(self.model_args)

    def last_checkpoint(self) -> str | None:
        """The newest checkpoint written to the end (one a kill cut short is not: `claim` removes it)."""
        steps = {c: c.name.removeprefix("checkpoint-") for c in self.output_dir.glob("checkpoint-*")}
        found = [c for c, step in steps.items() if step.isdigit() and complete_checkpoint(c)]
        return str(max(found, key=lambda c: int(steps[c]))) if found else None

    def train(self, trainer, counts: dict, metric: str = "loss"):
        """Trains, from the last checkpoint of this configuration if there is one; adds the run's numbers (the
        trainer's result and the last logged entry that has `metric`) to counts."""
        trainer.accelerator.wait_for_everyone()  # rank 0 has cleared checkpoints of another configuration
        last = self.resumed_from = self.last_checkpoint()
        if last:
            self.log(f"resuming from {last}")
        counts["resumed_from_step"] = int(last.rsplit("-", 1)[-1]) if last else 0
        trainer.add_callback(release_freed_memory_callback())
        result = trainer.train(resume_from_checkpoint=last)
        counts["global_step"] = trainer.state.global_step
        last_logged = next((e for e in reversed(trainer.state.log_history) if metric in e), {})
        for key, value in {**last_logged, **result.metrics}.items():
            if isinstance(value, (int, float)):
                counts[key] = round(value, 6)
        return result

    def finish(self, trainer, tokenizer, counts: dict, restore_from: str | None = None) -> dict | None:
        """Saves the model (LoRA: merged) and, on the main process, the manifest. `restore_from`: a model folder
        saved during training (the collapse guard's best) replaces the last model's weights before the manifest."""
        merge = self.model_args.use_peft and self.settings.merge_lora
        save(trainer, tokenizer, str(self.output_dir), merge, self.model_path)
        if restore_from and trainer.accelerator.is_main_process:
            restore(restore_from, str(self.output_dir), merge, self.model_path, trainer.model.dtype)
            counts["restored_from"] = restore_from
        trainer.accelerator.wait_for_everyone()
        if not trainer.accelerator.is_main_process:
            return None
        manifest = write_manifest(str(self.output_dir), self.stage, self.config, self.inputs, counts, self.started)
        self.log(f"{self.output_dir}: {counts}")
        return manifest


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
        merge_lora(base_model, adapter_dir, output_dir, trainer.model.dtype)
        tokenizer.save_pretrained(output_dir)
    trainer.accelerator.wait_for_everyone()


def restore(saved: str, output_dir: str, merge: bool, base_model: str, dtype=None) -> None:
    """The model saved in `saved` (Trainer.save_model: a full model, or a LoRA adapter) as output_dir's model."""
    import shutil

    if merge:
        merge_lora(base_model, saved, output_dir, dtype)
        return
    for old in Path(output_dir).glob("*.safetensors"):
        old.unlink()
    Path(output_dir, "model.safetensors.index.json").unlink(missing_ok=True)
    for path in Path(saved).iterdir():
        if path.is_file():
            shutil.copy2(path, Path(output_dir) / path.name)


def merge_lora(base_model: str, adapter_dir: str, output_dir: str, dtype=None) -> None:
    """The base model with a saved adapter merged in, saved as a full model folder (what vLLM loads).

    Merged from the saved adapter into a fresh CPU copy of the base: the training copy may be sharded.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype or "auto")
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(output_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(
        adapter_dir if (Path(adapter_dir) / "tokenizer_config.json").exists() else base_model
    ).save_pretrained(output_dir)
