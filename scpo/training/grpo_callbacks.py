"""Trainer callbacks of `scpo grpo`: greedy held-out accuracy during training, and a per-step jsonl log."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

from scpo.core.rows import prompt_of
from scpo.rewards import gold_answer, is_correct
from scpo.sampling import prompt_text
from scpo.tasks import Task


class HeldoutEval(TrainerCallback):
    """Greedy accuracy on held-out problems (the task's grader) before training, every `every` steps, and at the end.

    Each process evaluates its share of the problems with transformers `generate` on the policy being
    trained; the counts are summed over processes. The numbers are logged as `heldout/accuracy` and
    `heldout/answered` (share of answers the task could parse) at the step they were measured.
    """

    def __init__(
        self, trainer, problems: list[dict], task: Task, every: int, max_new_tokens: int, batch_size: int = 32
    ):
        self.trainer, self.problems, self.task = trainer, problems, task
        self.every, self.max_new_tokens, self.batch_size = every, max_new_tokens, batch_size

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self.trainer.log(self.evaluate())  # no training metrics yet: a log entry of its own at step 0

    def on_step_end(self, args, state, control, **kwargs):
        if (self.every and state.global_step % self.every == 0) or state.global_step >= state.max_steps:
            for name, value in self.evaluate().items():  # joins this step's training metrics
                self.trainer._metrics["train"][name].append(value)
            control.should_log = True
        return control

    def evaluate(self) -> dict[str, float]:
        import torch
        from accelerate.utils import gather_object
        from trl.models import unwrap_model_for_generation

        trainer, tok = self.trainer, self.trainer.processing_class
        acc = trainer.accelerator
        mine = self.problems[acc.process_index :: acc.num_processes]
        correct = answered = 0
        with (
            unwrap_model_for_generation(
                trainer.model_wrapped, acc, gather_deepspeed3_params=trainer.args.ds3_gather_for_generation
            ) as model,
            torch.no_grad(),
        ):
            was_training = model.training
            model.eval()
            for start in range(0, len(mine), self.batch_size):
                batch = mine[start : start + self.batch_size]
                texts = [prompt_text(tok, prompt_of(p, self.task)) for p in batch]
                enc = tok(
                    texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=not self.task.chat
                )  # a chat template writes its own BOS
                out = model.generate(
                    **enc.to(acc.device),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
                for p, ids in zip(batch, out[:, enc["input_ids"].size(1) :]):
                    answer = self.task.extract(tok.decode(ids, skip_special_tokens=True))
                    answered += answer is not None
                    correct += is_correct(answer, gold_answer(p.get("gold"), self.task), self.task)
            model.train(was_training)
        counts = [sum(x) for x in zip(*gather_object([(correct, answered, len(mine))]))]
        total = max(counts[2], 1)
        return {"heldout/accuracy": counts[0] / total, "heldout/answered": counts[1] / total}


class JsonlLog(TrainerCallback):
    """Every log entry (training metrics, held-out accuracy) as one json line, for `scpo report`."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")
