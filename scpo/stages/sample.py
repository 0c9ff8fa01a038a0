"""`scpo sample`: k completions per problem with vLLM (or transformers), sharded and resumable.

Problems are cut into `num_shards` contiguous shards. Each shard is generated in one call and
written atomically under `<samples_file>.shards/<config hash>/`; a finished shard is never redone,
so a killed run resumes where it stopped. A run without `--shard_index` does every pending shard
(one vLLM worker per GPU group with `--data_parallel auto`), then merges all shards into the
samples file. How a shard is drawn (seeds, adaptive rounds, extra samples, the rows) is
scpo/sampling/draw.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from scpo.adaptive import check_rule
from scpo.core.blocks import DecodingBlock, EngineBlock, ModelBlock, ShardBlock, StageBlock, TaskBlock
from scpo.core.errors import ScpoError
from scpo.core.io import check_writable, config_digest, file_digest, read_rows, write_json, write_rows
from scpo.core.manifest import check_distinct, check_own_output, is_done, iter_file, write_manifest
from scpo.core.memory import release_freed_memory, resident_mb
from scpo.core.models import model_fingerprint, resolve_model
from scpo.core.rows import PROBLEM_FIELDS, load_problems
from scpo.core.settings import parse_settings, set_settings
from scpo.core.shards import ShardSet, shard_bounds
from scpo.sampling import make_sampler
from scpo.sampling.draw import sample_shard
from scpo.tasks import get_task


@dataclass
class SampleSettings(StageBlock, ShardBlock, EngineBlock, DecodingBlock, TaskBlock, ModelBlock):
    """scpo sample: k completions per problem with vLLM (or transformers), sharded and resumable."""

    OUTPUTS = ("samples_file",)  # checked against every other path setting (scpo/core/settings.py)

    problems_file: str | None = None  # id, prompt[, gold]; default <iter_dir>/problems.jsonl
    samples_file: str | None = None  # default <iter_dir>/samples.jsonl
    k: int = 8  # samples per prompt (ScPO: 8 for GSM8K and MATH, 16 for ZebraLogic)
    temperature: float = 0.7  # sampling temperature (ScPO: 0.7)
    lora_path: str | None = None  # sample from base model + this PEFT adapter
    data_parallel: str = "1"  # "auto": one worker per GPU group; or a number of workers
    worker_index: int | None = None  # set by the data-parallel launcher: this worker does shards
    worker_count: int = 1  # worker_index, worker_index + worker_count, ...
    resample_n: int = 0  # ScPO: extra samples for prompts whose k samples all agree (the paper: 8)
    resample_temperature: float = 1.2  # ScPO: the extra samples' temperature
    max_problems: int | None = None  # only the first N problems
    new_problems: int = 0  # > 0: also sample <iter_dir>/generated_problems.jsonl (scpo generate-problems)
    save_token_ids: bool = False  # also keep completion_token_ids and token_logprobs per row
    # Adaptive sampling (scpo/adaptive/): draw a prompt's samples in rounds, stop once its vote is settled.
    adaptive: str = (
        "none"  # none | overtake (exact) | beta | dirichlet (posterior at adaptive_confidence) | esc (windows)
    )
    adaptive_min_samples: int = 4  # the first round
    adaptive_round: int = 2  # samples per later round
    adaptive_confidence: float = 0.95  # beta / dirichlet: stop when P(leader stays ahead) reaches this
    adaptive_audit: float = 0.0  # share of prompts also drawn up to k to measure majority agreement (not written)

    def __post_init__(self):
        super().__post_init__()
        if self.k < 1:
            raise ScpoError(f"setting k={self.k}: need at least one sample per prompt")
        if self.temperature < 0:
            raise ScpoError("settings temperature >= 0 and 0 < top_p <= 1 are required")
        check_rule(self.adaptive)
        if self.adaptive_min_samples < 1 or self.adaptive_round < 1:
            raise ScpoError("settings adaptive_min_samples and adaptive_round must be >= 1")
        if self.adaptive == "esc" and self.adaptive_min_samples != self.adaptive_round:
            raise ScpoError(
                f"adaptive=esc draws windows of w samples: set adaptive_min_samples = adaptive_round = w "
                f"(now {self.adaptive_min_samples} and {self.adaptive_round}; ESC's default w is 5)"
            )
        if not 0 < self.adaptive_confidence < 1 or not 0 <= self.adaptive_audit <= 1:
            raise ScpoError("settings 0 < adaptive_confidence < 1 and 0 <= adaptive_audit <= 1 are required")


SETTINGS = SampleSettings

# Settings that change what is sampled (the shard folder is named by their hash).
SAMPLING_KEYS = (
    "task",
    "task_options",
    "k",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "stop",
    "seed",
    "dtype",
    "max_model_len",
    "lora_path",
    "backend",
    "resample_n",
    "resample_temperature",
    "max_problems",
    "new_problems",
    "save_token_ids",
    "vllm_kwargs",
    "adaptive",
    "adaptive_min_samples",
    "adaptive_round",
    "adaptive_confidence",
    "adaptive_audit",
)


class Plan:
    """Where a run's files go, and which shards are done."""

    def __init__(self, s: SampleSettings, model_path: str):
        self.settings = s
        self.problems_file = iter_file(s.iter_dir, s.problems_file, "problems.jsonl")
        self.samples_file = iter_file(s.iter_dir, s.samples_file, "samples.jsonl")
        self.model_path = model_path
        self.config = {key: getattr(s, key) for key in SAMPLING_KEYS}
        self.config["model"] = model_path
        self.config["model_weights"] = model_fingerprint(model_path)
        if s.lora_path:
            self.config["lora_weights"] = model_fingerprint(s.lora_path)
        self.config["problems"] = file_digest(self.problems_file) if Path(self.problems_file).exists() else None
        self.generated_file = iter_file(s.iter_dir, None, "generated_problems.jsonl") if s.new_problems else None
        if self.generated_file:
            self.config["generated_problems"] = file_digest(self.generated_file)
        self.inputs = [self.problems_file] + ([self.generated_file] if self.generated_file else [])
        self.shards = ShardSet(Path(self.samples_file + ".shards") / config_digest(self.config), s.num_shards)


def worker_count(s: SampleSettings) -> int:
    if s.data_parallel != "auto":
        try:
            return max(1, int(s.data_parallel))
        except ValueError:
            raise ScpoError(f"setting data_parallel={s.data_parallel!r}: expected 'auto' or a number") from None
    gpus = visible_gpus()
    return max(1, len(gpus) // s.tensor_parallel_size) if gpus else 1


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip() != ""]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def worker_commands(argv: list[str], s: SampleSettings, workers: int) -> list[tuple[list[str], dict[str, str]]]:
    """One `scpo sample` process per GPU group, each over shards w, w+workers, ... (commands and env)."""
    gpus = visible_gpus()
    tp = s.tensor_parallel_size
    out = []
    for w in range(workers):
        env = {}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[w * tp : (w + 1) * tp])
        worker_args = set_settings(
            argv, data_parallel=1, num_shards=max(s.num_shards, workers), worker_index=w, worker_count=workers
        )
        cmd = [sys.executable, "-m", "scpo.cli", "sample", *worker_args]
        out.append((cmd, env))
    return out


def run(s: SampleSettings, argv: list[str] | None = None) -> dict | None:
    problems_file = iter_file(s.iter_dir, s.problems_file, "problems.jsonl")
    # bad input fails before the engine starts, gold the task cannot grade included
    problems = load_problems(problems_file, s.max_problems, get_task(s.task, **s.task_options))
    if s.new_problems:
        generated = iter_file(s.iter_dir, None, "generated_problems.jsonl")
        if not Path(generated).exists():
            raise ScpoError(
                f"setting new_problems={s.new_problems}: {generated} is missing; "
                "run `scpo generate-problems` with the same settings first"
            )
        problems += read_rows(generated, required=PROBLEM_FIELDS, allow_empty=True)
    model_path = resolve_model(s.model)
    samples_file = iter_file(s.iter_dir, s.samples_file, "samples.jsonl")
    check_distinct({"samples_file": samples_file}, {"problems_file": problems_file})
    check_own_output(samples_file, "sample")
    check_writable(samples_file, "samples_file")  # before the engine starts, not after all generation
    workers = worker_count(s) if s.worker_index is None and s.shard_index is None else 1
    s.num_shards = max(s.num_shards, workers)  # every data-parallel worker gets at least one shard
    plan = Plan(s, model_path)
    merge_config = {**plan.config, "num_shards": s.num_shards}
    if s.shard_index is None and s.worker_index is None and not s.overwrite:
        done = is_done(plan.samples_file, merge_config, plan.inputs)
        if done is not None:
            print(f"[sample] {plan.samples_file} is up to date ({done['counts']}); skipping")
            return done
    task = get_task(s.task, **s.task_options)
    if s.shard_index is not None:
        shards = [s.shard_index]
    elif s.worker_index is not None:
        shards = list(range(s.worker_index, s.num_shards, s.worker_count))
    else:
        shards = list(range(s.num_shards))
    pending = plan.shards.pending(shards, s.overwrite)
    if s.shard_index is not None and not pending:  # e.g. a requeued or resubmitted array task
        print(
            f"[sample] shard {s.shard_index + 1}/{s.num_shards} is done ({plan.shards.file(s.shard_index)}); skipping"
        )
    if pending and workers > 1:
        launch_workers(argv or [], s, workers)
        pending = plan.shards.pending(shards, s.overwrite)
        if pending:
            raise ScpoError(f"data-parallel workers finished but shards {pending} are missing; re-run to resume")
    started = time.time()
    if pending:
        sampler = make_sampler(
            model_path, s, top_p=s.top_p, top_k=s.top_k, max_tokens=s.max_tokens, stop=s.stop, lora_path=s.lora_path
        )
        for i in pending:
            lo, hi = shard_bounds(len(problems), s.num_shards, i)
            t0 = time.time()
            # flush: under srun a progress bar reaches the job log only at its end; this line shows the shard started
            print(f"[sample] shard {i + 1}/{s.num_shards}: sampling problems {lo}-{hi - 1}", flush=True)
            # A LoRA sampler is not the base model: mark it so training does not take it as the base's reference.
            sampler_id = model_path if not s.lora_path else f"{model_path}+lora:{s.lora_path}"
            rows, counts = sample_shard(problems[lo:hi], sampler, task, s, sampler_id)
            counts["seconds"] = round(time.time() - t0, 2)
            _write_counts(plan.shards.file(i), counts)  # before the shard: a shard file means both exist
            write_rows(plan.shards.file(i), rows)
            del rows
            release_freed_memory()  # a kept heap fragments shard by shard (scpo/core/memory.py)
            print(f"[sample] shard {i + 1}/{s.num_shards}: {counts}; resident {resident_mb()} MB", flush=True)
    if s.shard_index is not None or s.worker_index is not None:
        return None
    return merge(plan, merge_config, started)


def _write_counts(shard: Path, counts: dict) -> None:
    write_json(shard.with_name(shard.name + ".counts.json"), counts)


def merge(plan: Plan, config: dict, started: float) -> dict:
    s = plan.settings
    missing = plan.shards.missing()
    if missing:
        raise ScpoError(f"shards {missing} of {s.num_shards} are not done yet in {plan.shards.folder}")
    rows, counts = [], {}
    for i in range(s.num_shards):
        rows.extend(read_rows(plan.shards.file(i), allow_empty=True))
        counts_file = plan.shards.file(i).with_name(plan.shards.file(i).name + ".counts.json")
        if counts_file.exists():
            for key, value in json.loads(counts_file.read_text()).items():
                counts[key] = counts.get(key, 0) + value
    if not rows:
        raise ScpoError(f"{plan.problems_file}: no prompt could be sampled ({counts})")
    write_rows(plan.samples_file, rows)
    counts["completions"] = len(rows)
    print(f"[sample] {plan.samples_file}: {counts}")
    return write_manifest(plan.samples_file, "sample", config, plan.inputs, counts, started)


def launch_workers(argv: list[str], s: SampleSettings, workers: int) -> None:
    procs = []
    for cmd, env in worker_commands(argv, s, workers):
        print(f"[sample] worker: {' '.join(cmd)}  ({env})")
        procs.append(subprocess.Popen(cmd, env={**os.environ, **env}))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise ScpoError(
            f"data-parallel sampling workers exited with codes {codes}; re-run to resume (finished shards are kept)"
        )


def main(argv: list[str]) -> dict | None:
    return run(parse_settings(SampleSettings, argv), argv)
