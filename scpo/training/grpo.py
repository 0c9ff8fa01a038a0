"""TTRL on TRL's GRPOTrainer: majority-vote rewards over each prompt's full group, across processes.

How TRL 1.16 lays out a generation batch (read from grpo_trainer.py): `RepeatSampler` puts each
prompt's `num_generations` rollouts next to each other, and each process takes its own consecutive
slice of the batch (`per_device_train_batch_size * steps_per_generation` rows). Reward functions are
called in `_calculate_rewards` with that process's rows only; TRL then gathers the rewards in rank
order and normalizes them in blocks of `num_generations`. So a group can be split across processes
and no process sees all of it when the rewards are computed: `GroupVoter` gathers every process's
(prompt id, answer, gold) with `gather_object`, votes on each full block, and returns this process's
rewards. The blocks are TRL's own groups, so the votes are the same whatever the number of processes.

n_votes vs n_samples (TTRL): all `num_generations = n_votes` rollouts of a prompt vote, and only the
first `n_samples` of each group are trained on (TTRL's `select_top_k_per_prompt`; rollouts are i.i.d.,
so the first ones are a uniform subset). The reward functions return None for the vote-only rollouts,
which TRL leaves out of the group mean and std (its "unscorable" rows), so the advantages are computed
over the trained rollouts as in TTRL; `VoteTrainer` then drops those rows from the batch.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.rewards import REWARDS, RolloutBatch, batch_stats, vote_group
from scpo.tasks import Task
from scpo.training.teacher import TeacherSpec, make_teacher


def completion_text(completion) -> str:
    """A completion as plain text (conversational completions are lists of messages)."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def trained_flags(n_local: int, rank: int, group_size: int, n_samples: int) -> list[bool]:
    """Which of this process's rows are trained on: the first n_samples of each group (global positions)."""
    start = rank * n_local
    return [(start + i) % group_size < n_samples for i in range(n_local)]


class LocalVotes:
    """This process's rollouts of one batch, voted on once: each reward reads the same batch."""

    def __init__(self, batch: RolloutBatch, trained: list[bool], stats: dict[str, float]):
        self.batch, self.trained, self.stats = batch, trained, stats

    def reward(self, reward) -> list[float | None]:
        """A reward's values for the trained rollouts; None for the vote-only ones."""
        return [r if keep else None for r, keep in zip(reward(self.batch), self.trained)]


class GroupVoter:
    """Votes over each prompt's full group of rollouts, gathered from every process.

    `group_size()` is TRL's group (num_generations) and `n_samples()` how many rollouts per group are
    trained on; `bind(trainer)` reads both from a GRPOTrainer.
    """

    def __init__(
        self,
        task: Task,
        group_size: Callable[[], int] | None = None,
        n_samples: Callable[[], int] | None = None,
        rank: Callable[[], int] | None = None,
        eos_token_ids: Sequence[int] | None = None,
    ):
        self.task = task
        self.group_size, self.n_samples, self.rank = group_size, n_samples, rank
        self.eos_token_ids = set(eos_token_ids or ())  # empty: no rollout counts as truncated
        self._last = None  # (completions object, LocalVotes): every reward function of a batch shares one vote
        self.needs_token_stats = False  # a reward reads the policy's per-token entropy / self-certainty
        # (prompt ids, completion ids) -> per-rollout TokenStats; bound to the trainer's policy by `bind`
        self.score_tokens: Callable | None = None

    def bind(self, trainer, n_samples: int) -> None:
        self.group_size = lambda: trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        self.n_samples = lambda: n_samples if trainer.model.training else self.group_size()
        self.rank = lambda: trainer.accelerator.process_index
        self.eos_token_ids = set(trainer.eos_token_ids)

        def score_tokens(prompt_ids, completion_ids):
            from scpo.training.token_stats import token_stats

            return token_stats(
                trainer.model,
                prompt_ids,
                completion_ids,
                trainer.temperature,
                trainer.processing_class.pad_token_id or 0,
                trainer.args.per_device_train_batch_size,
            )

        self.score_tokens = score_tokens

    def __call__(self, prompts: Sequence, completions: Sequence, kwargs: dict) -> LocalVotes:
        if self._last is not None and self._last[0] is completions:
            return self._last[1]
        votes = self._vote(prompts, completions, kwargs)
        self._last = (completions, votes)  # holding the list keeps its id from being reused by the next batch
        return votes

    def _vote(self, prompts, completions, kwargs) -> LocalVotes:
        from accelerate.utils import gather_object

        texts = [completion_text(c) for c in completions]
        # A rollout cut at max_completion_length has no vote and no answer unless the task says truncated
        # completions vote (as `scpo label` treats finish_reason "length"); TRL keeps the EOS of finished ones.
        truncated = [
            bool(self.eos_token_ids) and (not tokens or tokens[-1] not in self.eos_token_ids)
            for tokens in kwargs.get("completion_ids") or [[]] * len(texts)
        ]
        answers = [
            None if cut and not self.task.truncated_completions_vote else self.task.extract(t)
            for t, cut in zip(texts, truncated)
        ]
        ids = [str(i) for i in kwargs["id"]] if kwargs.get("id") is not None else [repr(p) for p in prompts]
        golds = kwargs.get("gold") or [None] * len(texts)
        teacher = kwargs.get("teacher_completion")  # vote_teacher frozen | ema: the teacher's rollout of each row
        if teacher is not None:
            teacher = [
                None if cut and not self.task.truncated_completions_vote else self.task.extract(t)
                for t, cut in zip(teacher, kwargs["teacher_truncated"])
            ]
        else:
            teacher = [None] * len(texts)
        # One list per process, in rank order: the order in which TRL gathers the rewards.
        per_rank = gather_object([list(zip(ids, answers, golds, truncated, teacher, texts))])
        rank, size = self.rank(), self.group_size()
        rows = [row for part in per_rank for row in part]
        if len(rows) % size or any(len(part) != len(texts) for part in per_rank):
            raise ScpoError(
                f"{len(rows)} rollouts over {len(per_rank)} processes do not form groups of "
                f"{size} (num_generations); TRL's batch layout is not the one scpo expects"
            )
        groups, group_golds, group_answers, group_texts = [], [], [], []
        for start in range(0, len(rows), size):
            block = rows[start : start + size]
            if len({r[0] for r in block}) != 1:
                raise ScpoError(
                    f"rollouts {start}..{start + size - 1} belong to different prompts "
                    f"{sorted({r[0] for r in block})[:3]}: not one group; TRL's batch layout changed"
                )
            group_answers.append([r[1] for r in block])
            group_texts.append([r[5] for r in block])
            teacher_answers = [r[4] for r in block] if kwargs.get("teacher_completion") is not None else None
            groups.append(vote_group(group_answers[-1], self.task, teacher_answers))
            group_golds.append(block[0][2])
        batch = RolloutBatch(
            texts=texts,
            answers=answers,
            groups=groups,
            group_golds=group_golds,
            group_answers=group_answers,
            local=slice(rank * len(texts), (rank + 1) * len(texts)),
            task=self.task,
            completion_ids=kwargs.get("completion_ids"),
            extras=kwargs,
            group_texts=group_texts,
        )
        stats = {**batch_stats(groups, group_golds, self.task), "truncated_rollouts": float(sum(r[3] for r in rows))}
        if self.needs_token_stats:
            prompt_ids = kwargs.get("prompt_ids")
            if prompt_ids is None or kwargs.get("completion_ids") is None or self.score_tokens is None:
                raise ScpoError(
                    "a reward needs the policy's token statistics, but the trainer gave no prompt and "
                    "completion ids (scpo's VoteTrainer passes them)"
                )
            batch.token_stats = self.score_tokens(prompt_ids, kwargs["completion_ids"])
            # Every group's mean token entropies (vote_rule scrl's entropy gate); 0 for an empty completion, as SCRL
            means = [sum(t.entropy) / len(t.entropy) if t.entropy else 0.0 for t in batch.token_stats]
            everyone = [m for part in gather_object([means]) for m in part]
            batch.group_entropies = [everyone[start : start + size] for start in range(0, len(everyone), size)]
            if kwargs.get("log_metric") is not None:  # the rollouts' means on this process; TRL averages them
                for name, key in (("self_certainty", "self_certainty"), ("token_entropy", "entropy")):
                    values = [sum(getattr(t, key)) / len(getattr(t, key)) for t in batch.token_stats if getattr(t, key)]
                    kwargs["log_metric"](f"label_free/{name}", sum(values) / len(values) if values else 0.0)
        if kwargs.get("log_metric") is not None:  # TRL averages these over processes; every process has the same
            for name, value in stats.items():
                kwargs["log_metric"](f"ttrl/{name}", value)
        return LocalVotes(batch, trained_flags(len(texts), rank, size, self.n_samples()), stats)


def reward_functions(names: Sequence[str], voter: GroupVoter, settings=None) -> list[Callable]:
    """TRL reward functions by registry name (scpo/rewards/); TRL logs each under its name (rewards/<name>/mean)."""
    if not names:
        raise ScpoError("setting reward_funcs=[]: name at least one reward")
    if len(set(names)) != len(names):
        raise ScpoError(f"setting reward_funcs={list(names)}: a reward is listed twice (weight it with reward_weights)")
    functions = []
    for name in names:
        reward = REWARDS.get(name)(settings)
        voter.needs_token_stats |= reward.needs_token_stats

        def function(prompts, completions, _reward=reward, **kwargs):
            # TRL's arguments whole in the batch's extras: a plain TRL reward function is called with them
            extras = {"prompts": prompts, "completions": completions, **kwargs}
            return voter(prompts, completions, extras).reward(_reward)

        function.__name__ = reward.name
        functions.append(function)
    return functions


class _VoteOnlyRowsAreExpected(logging.Filter):
    """TRL warns about every batch with rows no reward scores; vote-only rollouts are such rows by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "All reward functions returned None" not in record.getMessage()  # accelerate prefixes [RANK r]


@functools.cache
def _make_vote_trainer():
    import torch
    from trl import GRPOTrainer

    class VoteTrainer(GRPOTrainer):
        """GRPOTrainer that trains on the first n_samples rollouts of each group while all of them vote."""

        def __init__(
            self,
            *args,
            voter: GroupVoter,
            n_samples: int | None = None,
            teacher: TeacherSpec | None = None,
            dynamic_sampling=None,
            **kwargs,
        ):
            from scpo.training.vllm_colocate import adapt_to_cpu, cpu_engine_dtype, cpu_kv_cache_space

            model = kwargs.get("model", args[0] if args else None)
            config = kwargs.get("args")
            with cpu_kv_cache_space(config, getattr(model, "name_or_path", model)), cpu_engine_dtype(config):
                super().__init__(*args, **kwargs)

            adapt_to_cpu(self)  # colocated vLLM on CPU: TRL's per-parameter sync cannot run there
            self.n_samples = n_samples or self.num_generations
            # vote_teacher frozen | ema (scpo/training/teacher.py): a TeacherSpec (None: the policy votes), made
            # into the VoteTeacher here, where TRL has prepared the models
            self.teacher = None
            if teacher is not None:
                self.teacher = make_teacher(teacher, self)
                self.teacher.model.to(self.accelerator.device)
            self._teacher_rows = None
            self._scoring = False  # inside TRL's scoring of a generation batch (`_score_round`)
            check_vote_layout(
                self.n_samples,
                self.num_generations,
                self.args.per_device_train_batch_size,
                self.args.steps_per_generation,
            )
            voter.bind(self, self.n_samples)
            # DAPO's dynamic sampling (scpo/training/dynamic_sampling.py): a DynamicSampling, or None (off)
            self.dynamic_sampling, self.rollouts_generated, self._rewards_per_func = dynamic_sampling, 0, None
            if dynamic_sampling is not None:
                from scpo.training.dynamic_sampling import PromptStream, check_rewards_can_vary, check_whole_groups

                check_rewards_can_vary(self.n_samples, self.reward_func_names, self.reward_weights.tolist())
                check_whole_groups(
                    self.args.per_device_train_batch_size, self.args.steps_per_generation, self.num_generations
                )
                ids = (
                    self.train_dataset["id"]
                    if "id" in self.train_dataset.column_names
                    else range(len(self.train_dataset))
                )
                self._refill_stream = PromptStream([str(i) for i in ids], self.args.seed, self.shuffle_dataset)
            if self.n_samples < self.num_generations:
                logging.getLogger("trl.trainer.grpo_trainer").addFilter(_VoteOnlyRowsAreExpected())

        def _generate(self, prompts):
            generated = super()._generate(prompts)
            self._prompt_ids = generated[0]  # the exact prompt ids the rollouts continue: token-level rewards read them
            if self.teacher is not None:
                self._teacher_rows = self._teacher_rollouts(self._prompt_ids)
            return generated

        def _prepare_inputs(self, generation_batch):
            # ema: the teacher moves toward the policy once per optimizer step, at the step's first micro-batch and
            # before its rollouts; also on the steps that reuse a generation (steps_per_generation >
            # gradient_accumulation_steps), where no rollout would trigger it
            if self.teacher is not None and self.model.training:
                alpha = self.teacher.update(
                    self.accelerator.unwrap_model(self.model), self.state.global_step, self.state.max_steps
                )
                if alpha is not None:
                    self._metrics["train"]["teacher/ema_alpha"].append(alpha)
            return super()._prepare_inputs(generation_batch)

        def _save_checkpoint(self, model, trial):
            # The teacher goes into the checkpoint folder before transformers writes the folder's
            # trainer_state.json, the mark of a whole checkpoint (`complete_checkpoint`): a kill in between leaves a
            # folder without it, removed on resume. Saved after it (an on_save callback), a kill there left a
            # checkpoint that resumed with the EMA teacher back at its start (older checkpoints already rotated out).
            if self.teacher is not None and self.args.should_save:
                from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

                folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
                folder.mkdir(parents=True, exist_ok=True)
                self.teacher.save(folder)
            super()._save_checkpoint(model, trial)

        def _teacher_rollouts(self, prompt_ids) -> list[dict]:
            """The teacher's rollout of every row (ema: already moved toward the policy for this step)."""
            eos = list(self.eos_token_ids)
            ids = self.teacher.generate(
                prompt_ids,
                self.processing_class.pad_token_id or 0,
                eos,
                self.max_completion_length,
                self.temperature,
                self.top_p,
                self.top_k,
                self.args.per_device_train_batch_size,
            )
            texts = self.processing_class.batch_decode(ids, skip_special_tokens=True)
            return [
                {"teacher_completion": text, "teacher_truncated": not row or row[-1] not in eos}
                for text, row in zip(texts, ids)
            ]

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            # TRL passes dataset columns to reward functions; the prompt ids of these rollouts (and the teacher's
            # rollouts of the same prompts) go along the same way
            teacher = self._teacher_rows or [{}] * len(inputs)
            inputs = [{**row, "prompt_ids": ids, **extra} for row, ids, extra in zip(inputs, self._prompt_ids, teacher)]
            self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            return self._rewards_per_func  # every process's rows: dynamic sampling reads each group's rewards

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, *args, **kwargs):
            # While TRL scores a generation batch (the old and the reference log-probs, no gradient), the vote-only
            # rollouts are dropped right after (below): only the trained ones go through the model, the others get
            # NaN. With n_samples = n_votes / 2 this halves both forwards (0.5B TTRL: docs/log.md, 2026-12-06).
            keep = self._scoring_trained_rows(input_ids.size(0), kwargs)
            if keep is None:
                return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, *args, **kwargs)
            logps, _, aux_loss = super()._get_per_token_logps_and_entropies(
                model, input_ids[keep], attention_mask[keep], *args, **kwargs
            )
            scored = logps.new_full((input_ids.size(0), logps.size(1)), float("nan"))
            scored[keep] = logps
            return scored, None, aux_loss

        def _scoring_trained_rows(self, rows: int, kwargs: dict):
            """The trained rows of a generation batch being scored (a bool tensor); None: score every row (training's
            own forward, eval, every rollout trained, entropies asked for, or images)."""
            if not self._scoring or self.n_samples == self.num_generations or kwargs.get("compute_entropy"):
                return None
            if any(
                value is not None
                for name, value in kwargs.items()
                if name not in ("batch_size", "compute_entropy", "compute_aux_loss")
            ):
                return None
            return self._trained_mask(rows, self.accelerator.device)

        def _trained_mask(self, rows: int, device):
            """This process's trained rows of a generation batch of `rows` rows, as a bool tensor."""
            flags = trained_flags(rows, self.accelerator.process_index, self.num_generations, self.n_samples)
            return torch.tensor(flags, device=device)

        def _score_round(self, inputs):
            """TRL's generation, rewards, advantages and log-probs of one batch, the log-probs of trained rows only."""
            self._scoring = self.model.training
            try:
                output = super()._generate_and_score_completions(inputs)
            finally:
                self._scoring = False
            if self.model.training and self.n_samples < self.num_generations and "importance_sampling_ratio" in output:
                self._log_ratio_of_trained_rows(output)
            return output

        def _log_ratio_of_trained_rows(self, output: dict) -> None:
            """TRL has just logged its vLLM importance ratio's min / mean / max over every row, the vote-only ones at
            exactly 1 (their NaN log-probs give no difference); the trained rows' values replace those three."""
            from trl.trainer.utils import nanmax, nanmin

            ratio = output["importance_sampling_ratio"]
            keep = self._trained_mask(ratio.size(0), ratio.device)
            if ratio.size(1) == 1:  # sequence-level modes: one ratio a rollout
                flat = ratio[keep].flatten()
            else:
                mask = output["completion_mask"] * output.get("tool_mask", 1)
                flat = ratio[keep][mask[keep].bool()]
            none = torch.tensor(0.0, device=ratio.device)  # as TRL logs a batch without tokens
            metrics, gather = self._metrics["train"], self.accelerator.gather
            name = "sampling/importance_sampling_ratio/"
            metrics[name + "min"][-1] = nanmin(gather(flat.min() if flat.numel() else none)).item()
            metrics[name + "mean"][-1] = gather(flat.mean() if flat.numel() else none).nanmean().item()
            metrics[name + "max"][-1] = nanmax(gather(flat.max() if flat.numel() else none)).item()

        def _generate_and_score_completions(self, inputs):
            if self.model.training and self.dynamic_sampling is not None:
                from scpo.training.refill import generate_with_refill

                output = generate_with_refill(self, inputs, self._score_round)
            else:
                output = self._score_round(inputs)
                if self.model.training:
                    self.rollouts_generated += len(inputs) * self.accelerator.num_processes
            if not self.model.training or self.n_samples == self.num_generations:
                return output
            rows = output["completion_ids"].size(0)
            keep = self._trained_mask(rows, output["completion_ids"].device)
            for key, value in output.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.size(0) == rows:
                    output[key] = value[keep]
            # The token count that normalizes the loss must count the trained rollouts only.
            mask = output["completion_mask"] * output.get("tool_mask", 1)
            output["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
            self._metrics["train"]["ttrl/trained_rollouts"].append(self.accelerator.gather(keep.sum()).sum().item())
            return output

    return VoteTrainer


def check_vote_layout(n_samples: int, n_votes: int, per_device_batch: int, steps_per_generation: int) -> None:
    """Training on a subset needs whole groups on each process and whole trained rows per step."""
    if not 1 <= n_samples <= n_votes:
        raise ScpoError(f"setting n_samples={n_samples}: must be between 1 and n_votes={n_votes} (num_generations)")
    if n_samples == n_votes:
        return
    local = per_device_batch * steps_per_generation
    if local % n_votes:
        raise ScpoError(
            f"n_samples < n_votes needs each process's generation batch (per_device_train_batch_size "
            f"{per_device_batch} x steps_per_generation {steps_per_generation} = {local}) to be a "
            f"multiple of n_votes={n_votes}"
        )
    if per_device_batch * n_samples % n_votes:
        raise ScpoError(
            f"n_samples < n_votes: per_device_train_batch_size={per_device_batch} x n_samples/n_votes "
            f"({n_samples}/{n_votes}) must be a whole number of trained rollouts per step"
        )


def __getattr__(name: str):
    if name == "VoteTrainer":  # built on first use: importing trl is slow and the pure parts do not need it
        return _make_vote_trainer()
    raise AttributeError(name)
