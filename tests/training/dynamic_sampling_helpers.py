"""A GRPO reward for the dynamic sampling run: equal rewards for some prompts, different ones for the others.

`flat_for_some` gives every rollout of a prompt whose id starts with "flat" the reward 0 (no learning signal:
dynamic sampling must drop it) and the others 0, 1, 0, 1, ... by position in the group (always a spread).
Each call appends {"step", "ids"} (the optimizer steps done, one id per group) to the file named by
$DYNAMIC_SAMPLING_REWARD_LOG, so a test can recount the rounds and dropped groups from outside the trainer.
"""

from __future__ import annotations

import json
import os

from scpo.rewards import Reward


class FlatForSome(Reward):
    name = "flat_for_some"

    def __call__(self, batch):
        ids = [str(i) for i in batch.extras["id"]]
        size = batch.groups[0].size
        rewards = [0.0 if row_id.startswith("flat") else float(k % size % 2) for k, row_id in enumerate(ids)]
        with open(os.environ["DYNAMIC_SAMPLING_REWARD_LOG"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": batch.extras["trainer_state"].global_step, "ids": ids[::size]}) + "\n")
        return rewards
