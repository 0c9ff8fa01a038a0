"""`labeler: judge` (Self-Rewarding LMs, Yuan et al. 2024): M_t scores each of its responses as an LLM judge.

The additive 5-point prompt (`judge_template`, one prompt per response), `judge_samples: 3` judge
outputs per response averaged; unreadable outputs are recorded (`judge_unparsed`) and excluded,
never read as 0 (scpo/judge.py). `judge_pairwise` compares each two responses in both orders
instead. Pair: max vs min score, ties dropped; trained with DPO. Judging runs through the sampling
backends, sharded and resumable (`--shard_index i` judges one shard, like `scpo sample`).
"""

from __future__ import annotations

from dataclasses import dataclass

from scpo.core.errors import ScpoError
from scpo.core.settings import Block
from scpo.judge import DEFAULT_PAIRWISE_TEMPLATE, DEFAULT_TEMPLATE
from scpo.labelers._internal import InternalRewardLabeler


@dataclass
class JudgeSettings(Block):
    judge_template: str = DEFAULT_TEMPLATE  # needs {instruction} and {response}
    judge_samples: int = 3  # judge outputs per response, averaged
    judge_temperature: float = 0.7  # the judge's sampling temperature
    judge_top_p: float = 0.9  # the judge's nucleus sampling
    judge_max_tokens: int = 256  # tokens per judge output
    judge_response_prefix: str = ""  # text the judge's answer starts with (e.g. "Score:" for tiny models)
    judge_max_score: float = 5.0  # the top of the judge's scale
    judge_pairwise: bool = False  # compare each two responses (in both orders) instead of scoring each alone
    judge_pairwise_template: str = DEFAULT_PAIRWISE_TEMPLATE  # needs {instruction}, {response_a}, {response_b}

    def __post_init__(self):
        super().__post_init__()
        if self.judge_samples < 1:
            raise ScpoError(f"setting judge_samples={self.judge_samples}: need at least one judge output")
        if "{instruction}" not in self.judge_template or "{response}" not in self.judge_template:
            raise ScpoError("setting judge_template: must contain {instruction} and {response}")
        if self.judge_pairwise and any(
            f not in self.judge_pairwise_template for f in ("{instruction}", "{response_a}", "{response_b}")
        ):
            raise ScpoError(
                "setting judge_pairwise_template: must contain {instruction}, {response_a} and {response_b}"
            )


class Judge(InternalRewardLabeler):
    name = "judge"
    settings = JudgeSettings
    signals = ("judge",)
    needs_gpu = True  # the judge is M_t on a vLLM engine
    shardable = True
