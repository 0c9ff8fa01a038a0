"""The vote teacher of `scpo grpo` (`vote_teacher: frozen | ema`): a second model whose rollouts vote.

With a teacher, each prompt's majority answer comes from the teacher's own rollouts of it, as many as the
policy's (n_votes), sampled with the policy's generation settings from the very prompt ids the policy got;
the policy's rollouts join the answer groups without votes, so every vote reward (majority, vote_share,
semantic_vote_share) scores the policy against the teacher's votes.

- frozen: the teacher is M_0 (a copy of the policy before its first step) or `teacher_model`, never updated.
  SRT (Shafayat et al. 2025, arXiv 2505.21444) votes with the current policy in its main method (`current`
  here); labels from a fixed model are one of the variants it studies, which it reports as weaker.
- ema (Co-rewarding-II, Zhang et al. 2025, arXiv 2508.00410; code tmlr-group/Co-rewarding, Co-rewarding-II):
  the teacher starts as the policy and, at every step before it generates, becomes
  teacher <- alpha x policy + (1 - alpha) x teacher (`sharding_manager/fsdp_vllm.py:
  _update_ref_model_sliding_average`), alpha cosine-annealed alpha(t) = a_end + (a_start - a_end)(1 + cos(pi t
  / T)) / 2 with t = step - 1 clipped to [0, T] (`update_alpha`), a_start 0.01 and a_end 1e-5
  (`run_corewarding-II.sh`); it samples n rollouts per prompt like the policy (`generate_ref_sequences`) and the
  majority of their answers is the pseudo-label the policy is rewarded for matching
  (`reward_manager/co_rewarding_II.py`).

In the reference the moving average IS the KL reference model (it updates verl's ref module, and the run script
keeps kl_loss_coef 0.001): with `beta > 0` scpo makes TRL's reference model the teacher (`teacher_as_reference`,
default true), so the KL term pulls toward the average and no third copy is held. The reference updates once per
training step, where one step is one optimizer step (train_batch_size = ppo_mini_batch_size 128); scpo updates at
the first micro-batch of every optimizer step, also those that reuse a generation (`steps_per_generation` >
`gradient_accumulation_steps`).

The teacher is saved into each checkpoint (`teacher.safetensors`), so a resumed ema run goes on from the
average, not from the resumed policy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scpo.core.errors import ScpoError

TEACHER_FILE = "teacher.safetensors"


@dataclass
class TeacherSpec:
    """The vote teacher `scpo grpo` asks for (`vote_teacher` frozen | ema); the trainer makes it (`make_teacher`)
    once TRL has prepared its models."""

    mode: str  # frozen | ema
    model: object = None  # a loaded teacher_model; None: a copy of the policy as it is at the start (M_0)
    alpha_start: float = 0.01  # ema: the annealed alpha's first value ...
    alpha_end: float = 1e-5  # ... and its last
    as_reference: bool = False  # ema with beta > 0: TRL's reference model is the teacher (Co-rewarding-II)


def ema_alpha(step: int, total: int, start: float, end: float) -> float:
    """Co-rewarding-II's annealed alpha for the update before step `step` (1-based) of `total`."""
    if total <= 0:
        return start
    t = max(0, min(step - 1, total))
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * t / total))


class VoteTeacher:
    def __init__(self, model, mode: str, alpha_start: float = 0.01, alpha_end: float = 1e-5):
        self.model, self.mode = model, mode
        self.alpha_start, self.alpha_end = alpha_start, alpha_end
        self.updated_at = 0  # the last optimizer step count an ema update was made for
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @classmethod
    def copy_of(cls, policy, mode: str, **kwargs) -> VoteTeacher:
        return cls(copy.deepcopy(policy), mode, **kwargs)

    def update(self, policy, done_steps: int, total_steps: int) -> float | None:
        """ema: the average moves toward the policy once per optimizer step (before that step's rollouts)."""
        import torch

        if self.mode != "ema" or done_steps <= self.updated_at:
            return None
        alpha = ema_alpha(done_steps + 1, total_steps, self.alpha_start, self.alpha_end)
        policy_params = dict(policy.named_parameters())
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                source = policy_params[name]
                p.mul_(1.0 - alpha).add_(source.detach().to(p.device, p.dtype), alpha=alpha)
        self.updated_at = done_steps
        return alpha

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        pad_id: int,
        eos_ids: Sequence[int],
        max_new_tokens: int,
        temperature: float,
        top_p: float = 1.0,
        top_k: int | None = None,
        batch_size: int = 16,
    ) -> list[list[int]]:
        """One sampled completion per prompt row (its ids up to and with the first EOS), as the policy's rollouts."""
        import torch

        device = next(self.model.parameters()).device
        eos = set(eos_ids)
        out: list[list[int]] = []
        with torch.no_grad():
            for start in range(0, len(prompt_ids), batch_size):
                rows = [list(map(int, r)) for r in prompt_ids[start : start + batch_size]]
                width = max(len(r) for r in rows)
                ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
                mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
                generated = self.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    do_sample=True,
                    temperature=temperature,
                    top_p=top_p,
                    top_k=top_k or 0,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad_id,
                    eos_token_id=list(eos),
                )
                for row in generated[:, width:].tolist():
                    cut = next((i + 1 for i, tok in enumerate(row) if tok in eos), len(row))
                    out.append(row[:cut])
        return out

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}  # tied weights: own copies
        tmp = Path(folder) / (TEACHER_FILE + ".tmp")
        save_file(state, str(tmp), metadata={"updated_at": str(self.updated_at)})
        tmp.replace(Path(folder) / TEACHER_FILE)

    def load(self, folder: str | Path) -> bool:
        """The teacher saved in a checkpoint, if there is one."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(folder) / TEACHER_FILE
        if not path.exists():
            return False
        self.model.load_state_dict(load_file(str(path)), strict=False)
        with safe_open(str(path), "pt") as f:
            self.updated_at = int((f.metadata() or {}).get("updated_at", 0))
        return True


def make_teacher(spec: TeacherSpec, trainer) -> VoteTeacher:
    """The VoteTeacher of a GRPO trainer whose models TRL has prepared: the loaded teacher_model, TRL's reference
    model (ema as the KL reference, with beta > 0), or a copy of the policy as it is now (M_0)."""
    alphas = {"alpha_start": spec.alpha_start, "alpha_end": spec.alpha_end}
    if spec.model is not None:
        return VoteTeacher(spec.model, spec.mode, **alphas)
    as_reference = spec.as_reference and spec.mode == "ema" and trainer.beta != 0.0
    if as_reference and trainer.ref_model is None:
        raise ScpoError(
            "settings vote_teacher=ema, beta>0 and teacher_as_reference=true: with a PEFT "
            "adapter TRL has no reference model to move (it disables the adapter); set "
            "teacher_as_reference false or beta 0"
        )
    if as_reference:  # Co-rewarding-II: the moving average is the KL reference
        return VoteTeacher(trainer.accelerator.unwrap_model(trainer.ref_model), spec.mode, **alphas)
    return VoteTeacher.copy_of(trainer.accelerator.unwrap_model(trainer.model), spec.mode, **alphas)
