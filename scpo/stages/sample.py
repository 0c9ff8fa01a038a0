"""`scpo sample`: k completions per problem with vLLM (or transformers), sharded and resumable.

Problems are cut into `num_shards` contiguous shards. Each shard is generated in one call and
written atomically under `<samples_file>.shards/<config hash>/`; a finished shard is never redone,
so a killed run resumes where it stopped. A run without `--shard_index` does every pending shard
(one vLLM worker per GPU group with `--data_parallel auto`), then merges all shards into the
samples file. Every prompt's request carries its own seed, so the text does not depend on how
prompts were batched, sharded or resumed.

Sample rows: id, prompt, messages, gold (if any), sample_index, completion, num_tokens,
finish_reason ("stop" | "length"), logprob (sum of the sampled tokens' raw log-probs: the
sampler's log pi(y|x) at temperature 1), temperature, resampled (extra samples drawn at a higher
temperature for prompts whose k samples all agree; they can be rejected, they do not vote).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from scpo.adaptive import RULES, leader, same_majority, should_stop
from scpo.errors import ScpoError
from scpo.io import config_digest, file_digest, read_rows, write_json, write_rows
from scpo.manifest import is_done, write_manifest
from scpo.sampling import Request, request_seed
from scpo.settings import parse_settings
from scpo.stages.common import iter_file
from scpo.stages.model import resolve_model
from scpo.tasks import Task, get_task
from scpo.voting import vote

PROBLEM_FIELDS = {"id": (str, int), "prompt": (str, list)}


@dataclass
class SampleSettings:
    model: str = "embedded"
    task: str = "gsm8k"
    task_options: dict = field(default_factory=dict)
    iter_dir: str | None = None
    problems_file: str | None = None
    samples_file: str | None = None
    k: int = 8
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int | None = None
    max_tokens: int = 512
    stop: list[str] = field(default_factory=list)
    seed: int = 0
    dtype: str = "auto"
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None  # default: 0.9 on GPU, 0.3 on CPU (host RAM for the KV cache)
    enforce_eager: bool = False
    lora_path: str | None = None
    vllm_kwargs: dict = field(default_factory=dict)
    backend: str = "vllm"  # or "hf": transformers generate
    num_shards: int = 1
    shard_index: int | None = None  # only this shard (a Slurm array task); no merge
    data_parallel: str = "1"  # "auto": one worker per GPU group; or a number of workers
    worker_index: int | None = None  # set by the data-parallel launcher: this worker does shards
    worker_count: int = 1  # worker_index, worker_index + worker_count, ...
    resample_n: int = 0  # ScPO: extra samples for prompts whose k samples all agree (the paper: 8)
    resample_temperature: float = 1.2
    max_problems: int | None = None
    new_problems: int = 0  # > 0: also sample <iter_dir>/generated_problems.jsonl (scpo generate-problems)
    save_token_ids: bool = False  # also keep completion_token_ids and token_logprobs per row
    # Adaptive sampling (scpo/adaptive.py): draw a prompt's samples in rounds, stop once its vote is settled.
    adaptive: str = "none"  # none | overtake (exact) | beta | dirichlet (posterior at adaptive_confidence)
    adaptive_min_samples: int = 4  # the first round
    adaptive_round: int = 2  # samples per later round
    adaptive_confidence: float = 0.95
    adaptive_audit: float = 0.0  # share of prompts also drawn up to k to measure majority agreement (not written)
    iteration: int = 0
    overwrite: bool = False

    def __post_init__(self):
        if self.k < 1:
            raise ScpoError(f"setting k={self.k}: need at least one sample per prompt")
        if self.num_shards < 1:
            raise ScpoError(f"setting num_shards={self.num_shards}: must be >= 1")
        if self.shard_index is not None and not 0 <= self.shard_index < self.num_shards:
            raise ScpoError(f"setting shard_index={self.shard_index}: must be in [0, num_shards={self.num_shards})")
        if self.backend not in ("vllm", "hf"):
            raise ScpoError(f"setting backend={self.backend!r}: expected 'vllm' or 'hf'")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ScpoError("settings temperature >= 0 and 0 < top_p <= 1 are required")
        if self.adaptive not in RULES:
            raise ScpoError(f"setting adaptive={self.adaptive!r}: expected one of {RULES}")
        if self.adaptive_min_samples < 1 or self.adaptive_round < 1:
            raise ScpoError("settings adaptive_min_samples and adaptive_round must be >= 1")
        if not 0 < self.adaptive_confidence < 1 or not 0 <= self.adaptive_audit <= 1:
            raise ScpoError("settings 0 < adaptive_confidence < 1 and 0 <= adaptive_audit <= 1 are required")


# Settings that change what is sampled (the shard folder is named by their hash).
SAMPLING_KEYS = ("task", "task_options", "k", "temperature", "top_p", "top_k", "max_tokens", "stop", "seed",
                 "dtype", "max_model_len", "lora_path", "backend", "resample_n", "resample_temperature",
                 "max_problems", "new_problems", "save_token_ids", "vllm_kwargs", "adaptive", "adaptive_min_samples",
                 "adaptive_round", "adaptive_confidence", "adaptive_audit")


def shard_bounds(n: int, num_shards: int, index: int) -> tuple[int, int]:
    """Contiguous, deterministic slices: shard i is problems[n*i//N : n*(i+1)//N]."""
    return n * index // num_shards, n * (index + 1) // num_shards


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
        self.shard_dir = Path(self.samples_file + ".shards") / config_digest(self.config)

    def shard_file(self, i: int) -> Path:
        return self.shard_dir / f"{i:05d}-of-{self.settings.num_shards:05d}.jsonl"

    def pending(self, shards: list[int]) -> list[int]:
        return [i for i in shards if self.settings.overwrite or not self.shard_file(i).exists()]


def model_fingerprint(path: str) -> str:
    """Size and mtime of the weight files: a retrained model at the same path gets new shards."""
    files = sorted(p for p in Path(path).glob("*") if p.suffix in (".safetensors", ".bin", ".json"))
    return config_digest({p.name: (p.stat().st_size, int(p.stat().st_mtime)) for p in files})


def load_problems(path: str, max_problems: int | None) -> list[dict]:
    rows = read_rows(path, required=PROBLEM_FIELDS)
    seen = set()
    for i, row in enumerate(rows, 1):
        if str(row["id"]) in seen:
            raise ScpoError(f"{path}:{i}: duplicate problem id {row['id']!r} (ids must be unique)")
        seen.add(str(row["id"]))
    return rows[:max_problems] if max_problems else rows


def make_sampler(s: SampleSettings, model_path: str):
    common = dict(dtype=s.dtype, max_model_len=s.max_model_len, top_p=s.top_p, top_k=s.top_k,
                  max_tokens=s.max_tokens, stop=s.stop, lora_path=s.lora_path)
    if s.backend == "hf":
        from scpo.sampling.hf_engine import HfSampler

        return HfSampler(model_path, **common)
    from scpo.sampling.vllm_engine import VllmSampler

    return VllmSampler(model_path, seed=s.seed, tensor_parallel_size=s.tensor_parallel_size,
                       gpu_memory_utilization=s.gpu_memory_utilization, enforce_eager=s.enforce_eager,
                       vllm_kwargs=s.vllm_kwargs, **common)


def messages_for(problem: dict, task: Task) -> list[dict]:
    prompt = problem["prompt"]
    return prompt if isinstance(prompt, list) else task.build_messages(prompt)


def sample_shard(problems: list[dict], sampler, task: Task, s: SampleSettings,
                 sampler_id: str | None = None) -> tuple[list[dict], dict]:
    """Samples one shard; returns its rows and counts. Prompts too long for the model are skipped and counted.

    `sampler_id` (the model folder) is written into every row: training uses the rows' log-probs as its
    reference only when it trains that very model.
    """
    tok = sampler.tokenizer()
    requests, kept = [], []
    too_long = 0
    for p in problems:
        messages = messages_for(p, task)
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
        if len(ids) >= sampler.max_model_len:
            too_long += 1
            print(f"[sample] warning: problem {p['id']!r} has {len(ids)} prompt tokens >= max_model_len "
                  f"{sampler.max_model_len}; skipped", file=sys.stderr)
            continue
        kept.append((p, messages))
        requests.append(Request(key=str(p["id"]), prompt_token_ids=ids, n=s.k, temperature=s.temperature,
                                seed=request_seed(s.seed, str(p["id"]))))
    adaptive = s.adaptive != "none"
    audit: dict = {}
    if adaptive:
        outputs = draw_adaptively(sampler, requests, task, s)
        if s.adaptive_audit:
            audit = audit_adaptive(sampler, requests, outputs, task, s)
    else:
        outputs = sampler.generate(requests) if requests else []
    rows: list[dict] = []
    resample_for: list[int] = []
    for j, ((p, messages), gens) in enumerate(zip(kept, outputs)):
        new = _rows(p, messages, gens, s.temperature, resampled=False, start=0, tokens=s.save_token_ids,
                    sampler_id=sampler_id)
        if adaptive:  # the labeler takes this as the prompt's k
            for row in new:
                row["num_drawn"] = len(gens)
        rows.extend(new)
        answers = {None if (a := _answer(g, task)) is None else task.answer_key(a) for g in gens}
        if s.resample_n and len(answers) == 1 and None not in answers:
            resample_for.append(j)
    if resample_for:  # ScPO: unanimous prompts get hotter samples so a rejected response can be found
        extra = [Request(key=f"{requests[j].key}:resample", prompt_token_ids=requests[j].prompt_token_ids,
                         n=s.resample_n, temperature=s.resample_temperature,
                         seed=request_seed(s.seed, f"{requests[j].key}:resample")) for j in resample_for]
        extra_out = sampler.generate(extra)
        by_id = {}
        for j, gens in zip(resample_for, extra_out):
            p, messages = kept[j]
            by_id[str(p["id"])] = _rows(p, messages, gens, s.resample_temperature, resampled=True, start=s.k,
                                        tokens=s.save_token_ids, sampler_id=sampler_id)
        rows = _interleave(rows, by_id)
    counts = {"problems": len(problems), "prompts_sampled": len(kept), "skipped_too_long": too_long,
              "completions": len(rows), "resampled_prompts": len(resample_for),
              "truncated": sum(r["finish_reason"] == "length" for r in rows),
              "output_tokens": sum(r["num_tokens"] for r in rows), **audit}
    if adaptive:
        counts["samples_drawn"] = sum(len(g) for g in outputs)
        counts["stopped_early"] = sum(len(g) < s.k for g in outputs)
    return rows, counts


def _answer(g, task: Task) -> str | None:
    return task.vote_answer(g.text, g.finish_reason == "length")


def draw_adaptively(sampler, requests: list[Request], task: Task, s: SampleSettings) -> list[list]:
    """Rounds of samples per prompt until the stopping rule says its vote is settled, or k are drawn.

    A round that already holds d samples asks for n more with seed + d: vLLM seeds the i-th of a
    request's n samples with seed + i, so the drawn samples are the first ones of the fixed-k run.
    """
    gens: list[list] = [[] for _ in requests]
    active = list(range(len(requests)))
    with tqdm(total=len(requests), desc="adaptive: prompts settled", unit="prompt") as bar:
        while active:
            batch = [replace(requests[j], n=min(s.adaptive_round if gens[j] else s.adaptive_min_samples,
                                                s.k - len(gens[j])), seed=requests[j].seed + len(gens[j]))
                     for j in active]
            for j, out in zip(active, sampler.generate(batch)):
                gens[j].extend(out)
            still = [j for j in active if not should_stop(
                [g.votes for g in vote([_answer(x, task) for x in gens[j]], task).groups], len(gens[j]), s.k,
                s.adaptive, s.adaptive_confidence)]
            bar.update(len(active) - len(still))
            active = still
    return gens


def audit_adaptive(sampler, requests: list[Request], gens: list[list], task: Task, s: SampleSettings) -> dict:
    """Draws the rest of k for a share of the prompts (by id hash) and counts majorities that would change."""
    chosen = [j for j, r in enumerate(requests)
              if request_seed(s.seed, f"{r.key}:audit") / (2**31 - 1) < s.adaptive_audit]
    short = [j for j in chosen if len(gens[j]) < s.k]
    rest = sampler.generate([replace(requests[j], n=s.k - len(gens[j]), seed=requests[j].seed + len(gens[j]))
                             for j in short]) if short else []
    changed = 0
    for j, extra in zip(short, rest):
        drawn = leader(vote([_answer(g, task) for g in gens[j]], task))
        full = leader(vote([_answer(g, task) for g in gens[j] + extra], task))
        changed += not same_majority(drawn, full, task)
    return {"audit_prompts": len(chosen), "audit_majority_changed": changed,
            "audit_extra_tokens": sum(g.num_tokens for out in rest for g in out)}


def _rows(problem: dict, messages: list[dict], gens, temperature: float, resampled: bool, start: int,
          tokens: bool = False, sampler_id: str | None = None) -> list[dict]:
    base = {"id": problem["id"], "prompt": problem["prompt"], "messages": messages}
    if sampler_id:
        base["sampler"] = sampler_id
    if problem.get("gold") is not None:
        base["gold"] = problem["gold"]
    if problem.get("origin"):  # "generated": written by the model (scpo generate-problems)
        base["origin"] = problem["origin"]
    rows = []
    for i, g in enumerate(gens):
        row = {**base, "sample_index": start + i, "completion": g.text, "num_tokens": g.num_tokens,
               "finish_reason": g.finish_reason, "logprob": g.logprob, "temperature": temperature,
               "resampled": resampled}
        if tokens:
            row["completion_token_ids"] = g.token_ids
            row["token_logprobs"] = g.token_logprobs
        rows.append(row)
    return rows


def _interleave(rows: list[dict], extra: dict[str, list[dict]]) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        out.append(row)
        last_of_prompt = i + 1 == len(rows) or str(rows[i + 1]["id"]) != str(row["id"])
        if last_of_prompt:
            out.extend(extra.get(str(row["id"]), []))
    return out


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
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[w * tp:(w + 1) * tp])
        cmd = [sys.executable, "-m", "scpo.cli", "sample", *argv, "--data_parallel", "1",
               "--num_shards", str(max(s.num_shards, workers)), "--worker_index", str(w),
               "--worker_count", str(workers)]
        out.append((cmd, env))
    return out


def run(s: SampleSettings, argv: list[str] | None = None) -> dict | None:
    problems_file = iter_file(s.iter_dir, s.problems_file, "problems.jsonl")
    problems = load_problems(problems_file, s.max_problems)  # bad input fails before the engine starts
    if s.new_problems:
        generated = iter_file(s.iter_dir, None, "generated_problems.jsonl")
        if not Path(generated).exists():
            raise ScpoError(f"setting new_problems={s.new_problems}: {generated} is missing; "
                            "run `scpo generate-problems` with the same settings first")
        problems += read_rows(generated, required=PROBLEM_FIELDS, allow_empty=True)
    model_path = resolve_model(s.model)
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
    pending = plan.pending(shards)
    if s.shard_index is not None and not pending:  # e.g. a requeued or resubmitted array task
        print(f"[sample] shard {s.shard_index + 1}/{s.num_shards} is done ({plan.shard_file(s.shard_index)}); skipping")
    if pending and workers > 1:
        launch_workers(argv or [], s, workers)
        pending = plan.pending(shards)
        if pending:
            raise ScpoError(f"data-parallel workers finished but shards {pending} are missing; re-run to resume")
    started = time.time()
    if pending:
        sampler = make_sampler(s, model_path)
        for i in pending:
            lo, hi = shard_bounds(len(problems), s.num_shards, i)
            t0 = time.time()
            # A LoRA sampler is not the base model: mark it so training does not take it as the base's reference.
            sampler_id = model_path if not s.lora_path else f"{model_path}+lora:{s.lora_path}"
            rows, counts = sample_shard(problems[lo:hi], sampler, task, s, sampler_id)
            counts["seconds"] = round(time.time() - t0, 2)
            _write_counts(plan.shard_file(i), counts)  # before the shard: a shard file means both exist
            write_rows(plan.shard_file(i), rows)
            print(f"[sample] shard {i + 1}/{s.num_shards}: {counts}")
    if s.shard_index is not None or s.worker_index is not None:
        return None
    return merge(plan, merge_config, started)


def _write_counts(shard: Path, counts: dict) -> None:
    write_json(shard.with_name(shard.name + ".counts.json"), counts)


def merge(plan: Plan, config: dict, started: float) -> dict:
    s = plan.settings
    missing = [i for i in range(s.num_shards) if not plan.shard_file(i).exists()]
    if missing:
        raise ScpoError(f"shards {missing} of {s.num_shards} are not done yet in {plan.shard_dir}")
    rows, counts = [], {}
    for i in range(s.num_shards):
        rows.extend(read_rows(plan.shard_file(i), allow_empty=True))
        counts_file = plan.shard_file(i).with_name(plan.shard_file(i).name + ".counts.json")
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
        raise ScpoError(f"data-parallel sampling workers exited with codes {codes}; re-run to resume "
                        "(finished shards are kept)")


def main(argv: list[str]) -> dict | None:
    return run(parse_settings(SampleSettings, argv), argv)
