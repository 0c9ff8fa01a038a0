"""`adaptive: esc` (Early-Stopping Self-Consistency, Li et al., ICLR 2024, arXiv 2401.10480): stop after a window
whose answers are all the same.

Samples are drawn in windows of w (`adaptive_min_samples` = `adaptive_round` = w; the paper's default w = 5 with
at most L = 40 samples, here `k`). After each window, sampling stops when every answer in that window is the same
(the window's answer distribution has zero entropy); otherwise the next window is drawn. As in the reference code
(github Yiwei98/ESC, early_stop_gsm8k.py: `if len(pre_dict) == 1: break`) only the last window is looked at, and
the answer is the majority of all samples drawn. A window with a sample that has no answer is not unanimous.
"""

from __future__ import annotations

from scpo.adaptive._base import StoppingRule


class Esc(StoppingRule):
    name = "esc"

    def settled(self, counts, drawn, k, confidence, answers=None, last_round=None):
        if not answers or not last_round:
            return False
        window = list(answers)[-last_round:]
        return None not in window and len(set(window)) == 1
