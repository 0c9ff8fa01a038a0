"""`scpo teacher`: the loop's moving-average vote teacher (`vote_teacher: ema`, Co-rewarding-II offline).

Co-rewarding-II (Zhang et al. 2025, arXiv 2508.00410) keeps a teacher that follows the policy slowly,
teacher <- alpha x policy + (1 - alpha) x teacher, and lets the teacher's samples vote
(scpo/training/teacher.py has the online form, one update per GRPO step). The loop makes one update per
iteration: teacher_0 = M_0 and, before iteration t's labels (t = 1 .. T-1),

    teacher_t = alpha_t x M_t + (1 - alpha_t) x teacher_{t-1},  alpha_t = ema_alpha(t, T - 1, start, end)

(the paper's cosine schedule over the T - 1 updates; the paper trains online only, so the per-iteration
form and its alpha are scpo's choice: set teacher_alpha_start / teacher_alpha_end, e.g. 0.5 / 0.1 for a
two- or three-iteration loop; the online defaults 0.01 / 1e-5 keep the teacher at M_0). The average is taken
in float32 over every parameter and saved in the models' dtype beside a copy of M_t's tokenizer; the loop
then samples the teacher (`scpo sample --model <iter_t>/teacher --samples_file <iter_t>/teacher_samples.jsonl`)
and `scpo label --teacher_samples` lets those samples vote.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from scpo.core.blocks import StageBlock, TeacherBlock
from scpo.core.errors import ScpoError
from scpo.core.manifest import iter_file, run_once
from scpo.core.models import model_fingerprint, resolve_model
from scpo.core.settings import parse_settings
from scpo.training.teacher import ema_alpha


@dataclass
class TeacherSettings(StageBlock, TeacherBlock):
    """scpo teacher: the loop's moving-average vote teacher, teacher_t = alpha_t M_t + (1 - alpha_t) teacher_{t-1}."""

    teacher_previous: str | None = None  # teacher_{t-1} (M_0 for t = 1; the loop passes it)
    teacher_current: str | None = None  # M_t, the model the teacher moves toward (the loop passes it)
    teacher_output: str | None = None  # default <iter_dir>/teacher
    iterations: int = 2  # T: the loop's iterations (alpha's schedule spans its T - 1 updates)


SETTINGS = TeacherSettings


def average(previous: str, current: str, alpha: float, output: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    teacher = AutoModelForCausalLM.from_pretrained(previous, dtype="auto")
    policy = AutoModelForCausalLM.from_pretrained(current, dtype="auto")
    mine, theirs = dict(teacher.named_parameters()), dict(policy.named_parameters())  # tied weights once
    if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
        raise ScpoError(f"teacher_previous={previous} and teacher_current={current} are not the same architecture")
    with torch.no_grad():
        for name, p in mine.items():
            p.copy_(((1 - alpha) * p.float() + alpha * theirs[name].float()).to(p.dtype))
    tmp = output.with_name(output.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    teacher.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(current).save_pretrained(tmp)
    shutil.rmtree(output, ignore_errors=True)
    os.replace(tmp, output)
    return {"alpha": alpha, "parameters": len(mine)}


def run(s: TeacherSettings) -> dict:
    if s.vote_teacher != "ema":
        raise ScpoError(
            f"scpo teacher makes the moving-average teacher: setting vote_teacher=ema (now {s.vote_teacher!r})"
        )
    if not s.teacher_previous or not s.teacher_current:
        raise ScpoError("scpo teacher needs --teacher_previous (teacher_{t-1}, M_0 first) and --teacher_current (M_t)")
    if s.iteration < 1:
        raise ScpoError(f"setting iteration={s.iteration}: the teacher is M_0 at iteration 0; updates start at 1")
    previous, current = resolve_model(s.teacher_previous), resolve_model(s.teacher_current)
    output = Path(iter_file(s.iter_dir, s.teacher_output, "teacher"))
    alpha = ema_alpha(s.iteration, max(s.iterations - 1, 1), s.teacher_alpha_start, s.teacher_alpha_end)
    config = {
        "previous": previous,
        "previous_weights": model_fingerprint(previous),
        "current": current,
        "current_weights": model_fingerprint(current),
        "alpha": alpha,
    }
    return run_once("teacher", str(output), config, [], lambda: average(previous, current, alpha, output), s.overwrite)


def main(argv: list[str]) -> dict:
    return run(parse_settings(TeacherSettings, argv))
