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
without a GPU, bf16 / fp16 are turned off once, when the settings are parsed.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

import yaml

from scpo.core import trl_keys
from scpo.core.blocks import LAUNCH_KEYS
from scpo.core.errors import HelpRequested, ScpoError
from scpo.core.io import config_digest
from scpo.core.manifest import is_done, write_manifest
from scpo.core.models import resolve_model
from scpo.core.settings import accepts_list, check_keys, help_text, load_recipe, per_iteration, split_argv

ACCELERATE_DIR = Path(__file__).resolve().parents[2] / "recipes" / "accelerate"
LAUNCHED_ENV = "SCPO_UNDER_ACCELERATE"
# Settings that say where or how to run, not what is trained: left out of the stage's config hash.
NOT_HASHED = ("iter_dir", "pairs_file", "overwrite", *LAUNCH_KEYS)


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


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
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(s.num_processes // machines),
                "--nnodes", str(machines), "--node_rank", str(s.machine_rank or 0),
                "--master_addr", s.main_process_ip or "127.0.0.1", "--master_port", str(s.main_process_port or 29500),
                "-m", "scpo.cli", command, *argv]
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


def parse_with_trl(argv: list[str], classes: tuple, adjust=None, stage: str = "train") -> tuple:
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
    ours = {k: per_iteration(k, v, hints[k], iteration) for k, v in recipe.items() if k in mine}
    if not has_gpu():  # TRL's configs default to bf16 and refuse it on CPU: training runs in float32
        for flag in ("bf16", "fp16"):
            if str(cli.get(flag, ours.get(flag, False))).lower() == "true":
                print(f"[{stage}] no GPU: {flag} off, training in float32", file=sys.stderr)
            ours[flag] = False
            cli.pop(flag, None)
    # Command-line values join the YAML that TrlParser reads (argparse still converts string values);
    # "a,b" becomes a list for list-typed fields (report_to, lora_target_modules, loss_type).
    for key, value in cli.items():
        if key not in mine:
            continue
        value = per_iteration(key, value, hints[key], iteration)
        if isinstance(value, str) and "," in value and accepts_list(hints[key]):
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


class TrlJob:
    """One `scpo train` / `scpo grpo` run: its config hash, output folder, launch, resume and manifest."""

    def __init__(self, stage: str, settings, args, model_args, argv: list[str], inputs: list[str]):
        self.stage, self.settings, self.args, self.model_args, self.argv = stage, settings, args, model_args, argv
        self.inputs = inputs
        if settings.iter_dir and args.output_dir in (None, "", "trainer_output"):
            args.output_dir = str(Path(settings.iter_dir) / "model")
        self.output_dir = Path(args.output_dir)
        self.model_path = resolve_model(settings.model)
        hashed = {k: v for k, v in dataclasses.asdict(settings).items() if k not in NOT_HASHED}
        self.config = {"settings": hashed, "model": self.model_path,
                       "training": {k: v for k, v in args.to_dict().items() if "dir" not in k and "token" not in k},
                       "model_args": dataclasses.asdict(model_args)}
        self.started = time.time()
        self.resumed_from: str | None = None

    def log(self, message: str) -> None:
        print(f"[{self.stage}] {message}")

    def done(self) -> dict | None:
        """The manifest of a finished run with this very config and inputs, if there is one."""
        if self.settings.overwrite:
            return None
        done = is_done(str(self.output_dir), self.config, self.inputs)
        if done is not None:
            self.log(f"{self.output_dir} is up to date ({done['counts']}); skipping")
        return done

    def relaunch(self) -> bool:
        """Under `accelerate_config`, runs this stage again under accelerate / torchrun; True once it has."""
        s = self.settings
        if not s.accelerate_config or os.environ.get(LAUNCHED_ENV):
            return False
        accelerate_config_path(s.accelerate_config)
        cmd = launch_command(s, self.argv, command=self.stage)
        self.log(" ".join(cmd))
        torchrun = "torch.distributed.run" in cmd  # several CPU processes: tell accelerate they are CPU (gloo)
        code = subprocess.call(cmd, env={**os.environ, LAUNCHED_ENV: "1",
                                         **({"ACCELERATE_USE_CPU": "true"} if torchrun else {})})
        if code:
            raise ScpoError(f"{self.stage} exited with code {code}; re-run to resume from the last checkpoint")
        return True

    def claim(self) -> None:
        """The output folder is this configuration's: checkpoints of another configuration are removed (rank 0).

        Called after the inputs were validated, so a bad input never costs a checkpoint.
        """
        if self.output_dir.resolve() == Path(self.model_path).resolve():
            raise ScpoError(f"setting output_dir={self.output_dir}: it is the model being trained ({self.model_path}); "
                            "write the trained model to another folder")
        if int(os.environ.get("RANK", "0")) != 0:
            return
        import shutil

        stamp = self.output_dir / ".scpo-train-config"
        digest = config_digest(self.config)
        if self.settings.overwrite or not stamp.exists() or stamp.read_text().strip() != digest:
            for old in self.output_dir.glob("checkpoint-*"):
                shutil.rmtree(old, ignore_errors=True)
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
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype or "auto",
                                                     attn_implementation=self.model_args.attn_implementation)
        return tokenizer, model

    def peft_config(self):
        from trl import get_peft_config

        return get_peft_config(self.model_args)

    def last_checkpoint(self) -> str | None:
        from transformers.trainer_utils import get_last_checkpoint

        return get_last_checkpoint(str(self.output_dir)) if self.output_dir.is_dir() else None

    def train(self, trainer, counts: dict):
        """Trains, from the last checkpoint of this configuration if there is one; adds the run's numbers to counts."""
        trainer.accelerator.wait_for_everyone()  # rank 0 has cleared checkpoints of another configuration
        last = self.resumed_from = self.last_checkpoint()
        if last:
            self.log(f"resuming from {last}")
        counts["resumed_from_step"] = int(last.rsplit("-", 1)[-1]) if last else 0
        result = trainer.train(resume_from_checkpoint=last)
        counts["global_step"] = trainer.state.global_step
        self.result = result
        return result

    def finish(self, trainer, tokenizer, counts: dict, metric: str = "loss") -> dict | None:
        """Saves the model (LoRA: merged) and, on the main process, the manifest; the last logged metrics join counts."""
        last_logged = next((e for e in reversed(trainer.state.log_history) if metric in e), {})
        for key, value in {**last_logged, **self.result.metrics}.items():
            if isinstance(value, (int, float)):
                counts[key] = round(value, 6)
        save(trainer, tokenizer, str(self.output_dir), self.model_args.use_peft and self.settings.merge_lora,
             self.model_path)
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
        # Merge from the saved adapter into a fresh CPU copy of the base: the training copy may be sharded.
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(base_model, dtype=trainer.model.dtype)
        merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
        merged.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)
    trainer.accelerator.wait_for_everyone()
