"""`labeler: judge` (Self-Rewarding LMs, Yuan et al. 2024): M_t scores each of its responses as an LLM judge.

The additive 5-point prompt (`judge_template`, one prompt per response), `judge_samples: 3` judge
outputs per response averaged; unreadable outputs are recorded (`judge_unparsed`) and excluded,
never read as 0 (scpo/judge.py). `judge_pairwise` compares each two responses in both orders
instead. Pair: max vs min score, ties dropped; trained with DPO. Judging runs through the sampling
backends, sharded and resumable (`--shard_index i` judges one shard, like `scpo sample`).
"""

from __future__ import annotations

from scpo.labelers._internal import InternalRewardLabeler


class Judge(InternalRewardLabeler):
    name = "judge"
    signals = ("judge",)
    needs_gpu = True  # the judge is M_t on a vLLM engine
    shardable = True
