"""`scpo grpo`: online RL from self-consistency (TTRL): TRL's GRPOTrainer with majority-vote rewards.

    scpo grpo --config recipes/grpo_cpu_demo.yaml [--setting value ...]
    scpo report runs/grpo_cpu_demo

Settings: this stage's own (below), every `GRPOConfig` field (num_generations, beta, use_vllm,
vllm_mode, reward_weights, ...) and every `ModelConfig` field (LoRA), from the recipe and the
command line. `reward_funcs` picks rewards by name: majority, vote_share, gold, format (weighted
with TRL's `reward_weights`). `n_votes` rollouts per prompt vote (TRL's num_generations) and the
first `n_samples` of them are trained on. Gold answers, where the problems have them, are used for
the logged label accuracy only, unless `gold` is one of the rewards.

Generation: transformers `generate` by default (the CPU path); `use_vllm: true` with
`vllm_mode: colocate | server` uses TRL's vLLM integration on GPUs. With `accelerate_config` set,
the stage relaunches itself under `accelerate launch`, as `scpo train` does.

Writes output_dir/ (the model, as `scpo train` saves it), output_dir/grpo_log.jsonl (one line per
log step: reward, ttrl/majority_ratio, ttrl/label_accuracy, heldout/accuracy, ...) and a manifest.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scpo.errors import ScpoError
from scpo.rewards import REWARD_NAMES
from scpo.stages.common import iter_file
from scpo.stages.train import (
    LAUNCHED_ENV,
    accelerate_config_path,
    claim_output_dir,
    launch_command,
    parse_with_trl,
)

LOG_NAME = "grpo_log.jsonl"


@dataclass
class GrpoSettings:
    model: str = "embedded"
    task: str = "gsm8k"
    task_options: dict = field(default_factory=dict)
    problems_file: str | None = None  # training prompts (id, prompt, optional gold)
    max_problems: int | None = None
    reward_funcs: list[str] = field(default_factory=lambda: ["majority"])  # majority | vote_share | gold | format
    n_votes: int | None = None  # rollouts per prompt that vote: TRL's num_generations (default: num_generations)
    n_samples: int | None = None  # the first n_samples of them are trained on (default: all)
    format_regex: str | None = None  # `format` reward: the whole completion must match (default: any parseable answer)
    eval_file: str | None = None  # held-out problems with gold answers: greedy accuracy during training
    max_eval_problems: int | None = None
    eval_every_steps: int = 0  # 0: before training and at the end only
    eval_max_tokens: int | None = None  # default: max_completion_length
    eval_batch_size: int = 32
    iter_dir: str | None = None
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
        unknown = [n for n in self.reward_funcs if n not in REWARD_NAMES]
        if unknown or not self.reward_funcs:
            raise ScpoError(f"setting reward_funcs={self.reward_funcs}: unknown reward {unknown}; expected some of "
                            f"{list(REWARD_NAMES)}")
        for name in ("n_votes", "n_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ScpoError(f"setting {name}={getattr(self, name)}: must be at least 1")
        if self.n_votes and self.n_samples and self.n_samples > self.n_votes:
            raise ScpoError(f"setting n_samples={self.n_samples} is larger than n_votes={self.n_votes}: only rollouts "
                            "that were generated can be trained on")
        if self.eval_every_steps < 0:
            raise ScpoError(f"setting eval_every_steps={self.eval_every_steps}: must be 0 (start and end) or more")


def parse(argv: list[str]):
    """(GrpoSettings, GRPOConfig, ModelConfig) from a recipe and overrides, through TRL's own parser."""
    from trl import GRPOConfig, ModelConfig

    def typed_values(values: dict) -> None:
        if isinstance(values.get("task_options"), str):  # from the command line: a YAML / JSON mapping
            import yaml

            options = yaml.safe_load(values["task_options"])
            if not isinstance(options, dict):
                raise ScpoError(f"setting task_options={values['task_options']!r}: expected a mapping")
            values["task_options"] = options
        weights = values.get("reward_weights")
        if weights is not None:  # TRL's parser takes list values from the YAML we write as they are: make floats
            weights = weights if isinstance(weights, list) else [weights]
            try:
                values["reward_weights"] = [float(w) for w in weights]
            except ValueError:
                raise ScpoError(f"setting reward_weights={weights}: expected numbers") from None
        n_votes = values.get("n_votes")
        if n_votes is None:
            return
        given = values.get("num_generations")
        if given is not None and int(given) != int(n_votes):
            raise ScpoError(f"settings n_votes={n_votes} and num_generations={given} disagree: n_votes is TRL's "
                            "num_generations (set one of them)")
        values["num_generations"] = int(n_votes)

    try:
        settings, args, model_args = parse_with_trl(argv, (GrpoSettings, GRPOConfig, ModelConfig),
                                                    adjust=typed_values)
    except ValueError as e:  # GRPOConfig's own checks (batch sizes vs num_generations, ...)
        raise ScpoError(f"invalid GRPO settings: {e} (generation_batch_size = per_device_train_batch_size x "
                        "processes x steps_per_generation; n_votes is num_generations)") from None
    if settings.n_samples and settings.n_samples > args.num_generations:
        raise ScpoError(f"setting n_samples={settings.n_samples} is larger than n_votes={args.num_generations} "
                        "(num_generations)")
    if args.reward_weights is not None and len(args.reward_weights) != len(settings.reward_funcs):
        raise ScpoError(f"setting reward_weights={args.reward_weights} has {len(args.reward_weights)} values for "
                        f"{len(settings.reward_funcs)} reward_funcs {settings.reward_funcs}")
    return settings, args, model_args


def load_prompts(path: str, task, max_problems: int | None):
    """The training prompts as a `datasets.Dataset`: conversational prompt, id, gold (None when unlabeled)."""
    import datasets

    from scpo.stages.sample import load_problems, messages_for

    problems = load_problems(path, max_problems)
    if not problems:
        raise ScpoError(f"{path}: no problems to train on")
    datasets.disable_progress_bars()
    return datasets.Dataset.from_list([
        {"prompt": messages_for(p, task), "id": str(p["id"]),
         "gold": None if p.get("gold") is None else str(p["gold"])} for p in problems])


def run(settings: GrpoSettings, args, model_args, argv: list[str]) -> dict | None:
    from scpo.manifest import is_done
    from scpo.stages.model import resolve_model

    problems_file = iter_file(settings.iter_dir, settings.problems_file, "problems.jsonl")
    if settings.iter_dir and args.output_dir in (None, "", "trainer_output"):
        args.output_dir = str(Path(settings.iter_dir) / "model")
    model_path = resolve_model(settings.model)
    inputs = [problems_file] + ([settings.eval_file] if settings.eval_file else [])
    config = {"settings": dataclasses.asdict(settings), "model": model_path,
              "training": {k: v for k, v in args.to_dict().items() if "dir" not in k and "token" not in k},
              "model_args": dataclasses.asdict(model_args)}
    for key in ("iter_dir", "accelerate_config", "num_processes", "num_machines", "machine_rank", "main_process_ip",
                "main_process_port", "overwrite"):
        config["settings"].pop(key, None)
    if not settings.overwrite and (done := is_done(args.output_dir, config, inputs)):
        print(f"[grpo] {args.output_dir} is up to date ({done['counts']}); skipping")
        return done
    if settings.accelerate_config and not os.environ.get(LAUNCHED_ENV):
        accelerate_config_path(settings.accelerate_config)
        cmd = launch_command(settings, argv, command="grpo")
        print(f"[grpo] {' '.join(cmd)}")
        code = subprocess.call(cmd, env={**os.environ, LAUNCHED_ENV: "1"})
        if code:
            raise ScpoError(f"GRPO training exited with code {code}; re-run to resume from the last checkpoint")
        return None
    return train(settings, args, model_args, model_path, problems_file, config, inputs)


def train(settings, args, model_args, model_path: str, problems_file: str, config: dict, inputs: list[str]):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import get_peft_config

    from scpo.grpo import GroupVoter, VoteTrainer, reward_functions
    from scpo.grpo_callbacks import HeldoutEval, JsonlLog
    from scpo.io import config_digest, read_rows
    from scpo.manifest import write_manifest
    from scpo.stages.train import save
    from scpo.tasks import get_task

    started = time.time()
    output_dir = Path(args.output_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        claim_output_dir(output_dir, config_digest(config), settings.overwrite)
    if not torch.cuda.is_available() and (args.bf16 or args.fp16):
        print("[grpo] no GPU: training in float32 (bf16/fp16 off)", file=sys.stderr)
        args.bf16 = args.fp16 = False
    task = get_task(settings.task, **settings.task_options)
    dataset = load_prompts(problems_file, task, settings.max_problems)
    heldout = []
    if settings.eval_file:
        heldout = read_rows(settings.eval_file, required={"id": (str, int), "prompt": (str, list),
                                                          "gold": (str, int, float)})
        heldout = heldout[: settings.max_eval_problems] if settings.max_eval_problems else heldout
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype or "auto",
                                                 attn_implementation=model_args.attn_implementation)
    voter = GroupVoter(task, settings.format_regex)
    trainer = VoteTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          reward_funcs=reward_functions(settings.reward_funcs, voter),
                          peft_config=get_peft_config(model_args), voter=voter, n_samples=settings.n_samples)
    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    log_path = output_dir / LOG_NAME
    if trainer.accelerator.is_main_process and not last:
        log_path.unlink(missing_ok=True)  # a fresh run starts a fresh log; a resumed one appends
    trainer.add_callback(JsonlLog(log_path))
    if heldout:
        trainer.add_callback(HeldoutEval(trainer, heldout, task, settings.eval_every_steps,
                                         settings.eval_max_tokens or args.max_completion_length,
                                         settings.eval_batch_size))
    trainer.accelerator.wait_for_everyone()  # rank 0 has cleared checkpoints of another configuration
    if last:
        print(f"[grpo] resuming from {last}")
    result = trainer.train(resume_from_checkpoint=last)
    counts = {"prompts": len(dataset), "reward_funcs": settings.reward_funcs, "n_votes": trainer.num_generations,
              "n_samples": trainer.n_samples, "global_step": trainer.state.global_step,
              "resumed_from_step": int(last.rsplit("-", 1)[-1]) if last else 0}
    history = trainer.state.log_history
    held = [e["heldout/accuracy"] for e in history if "heldout/accuracy" in e]
    if held:
        counts["heldout_accuracy_first"], counts["heldout_accuracy_last"] = round(held[0], 6), round(held[-1], 6)
    last_logged = next((e for e in reversed(history) if "reward" in e), {})
    for key, value in {**last_logged, **result.metrics}.items():
        if isinstance(value, (int, float)):
            counts[key] = round(value, 6)
    save(trainer, tokenizer, str(output_dir), model_args.use_peft and settings.merge_lora, model_path)
    if trainer.accelerator.is_main_process:
        manifest = write_manifest(str(output_dir), "grpo", config, inputs, counts, started)
        print(f"[grpo] {output_dir}: {counts}")
        return manifest
    return None


def main(argv: list[str]) -> dict | None:
    settings, args, model_args = parse(argv)
    return run(settings, args, model_args, argv)
