"""A collapse guard for `scpo grpo`: watch one logged metric, stop when it stops improving, keep the best model.

Label-free rewards rise and then collapse to consistent-but-wrong answers ("No Free Lunch", arXiv 2506.17219;
URLVR, arXiv 2603.08660; scpo's own GRPO CPU demo at lr 5e-6 peaked at held-out 0.583 at step 10 and fell to
0.208). The guard checks `guard_metric` each time it is logged: held-out accuracy on a small gold dev set
(`eval_file`, every `eval_every_steps`, the step-0 value included) or a label-free signal logged every step
(ttrl/majority_ratio, ttrl/distinct_answers, label_free/token_entropy, completions/mean_length, ...). It
stops training after `guard_patience` checks without an improvement of more than `guard_min_delta`, or at
once when the metric is `guard_max_drop` worse than the best. The best model (the step-0 model included) is
saved to output_dir/guard_best when it is found and becomes the stage's final model; the state is on disk
(guard_state.json), so a resumed run keeps it.

`GuardRule` is the pure decision; `CollapseGuard` is the TrainerCallback around it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

BEST_DIR, STATE_FILE = "guard_best", "guard_state.json"


@dataclass
class GuardRule:
    mode: str = "max"
    patience: int = 3
    min_delta: float = 0.0
    max_drop: float | None = None
    best_value: float | None = None
    best_step: int | None = None
    since_best: int = 0
    stopped_at: int | None = None
    reason: str | None = None

    def check(self, step: int, value: float) -> tuple[bool, bool]:
        """(this is the new best, stop now)."""
        sign = 1 if self.mode == "max" else -1
        if self.best_value is None or sign * (value - self.best_value) > self.min_delta:
            self.best_value, self.best_step, self.since_best = value, step, 0
            return True, False
        self.since_best += 1
        if self.max_drop is not None and sign * (self.best_value - value) > self.max_drop:
            self.stopped_at, self.reason = step, f"fell {abs(self.best_value - value):.4g} below the best"
        elif self.since_best >= self.patience:
            self.stopped_at, self.reason = step, f"no improvement in {self.since_best} checks"
        return False, self.stopped_at is not None


def _make_callback():
    from transformers import TrainerCallback

    class CollapseGuard(TrainerCallback):
        def __init__(self, trainer, metric: str, rule: GuardRule, output_dir: Path):
            self.trainer, self.metric, self.rule = trainer, metric, rule
            self.dir = Path(output_dir)
            state = self.dir / STATE_FILE
            if state.exists():  # a resumed run: the best so far and the count since
                self.rule = GuardRule(**json.loads(state.read_text()))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or self.metric not in logs or self.rule.stopped_at is not None:
                return control
            best, stop = self.rule.check(state.global_step, float(logs[self.metric]))
            if best:
                self.trainer.save_model(str(self.dir / BEST_DIR))  # every process: saving may be collective
            if stop:
                control.should_training_stop = True
            if state.is_world_process_zero:
                tmp = self.dir / (STATE_FILE + ".tmp")
                tmp.write_text(json.dumps(asdict(self.rule)))
                tmp.replace(self.dir / STATE_FILE)
            return control

        def summary(self) -> dict:
            return {
                "metric": self.metric,
                **{
                    k: v
                    for k, v in asdict(self.rule).items()
                    if k in ("best_value", "best_step", "stopped_at", "reason")
                },
            }

    return CollapseGuard


def __getattr__(name: str):
    if name == "CollapseGuard":  # transformers is imported on first use only
        return _make_callback()
    raise AttributeError(name)
