"""Dynamic sampling on TRL's GRPOTrainer: generation rounds until every kept group has rewards that differ.

The narrowest place in TRL 1.16 (trl/trainer/grpo_trainer.py): `_prepare_inputs` calls
`_generate_and_score_completions` once per generation batch (per_device_train_batch_size x
steps_per_generation rows on each process), then shuffles the result and splits it into the
steps_per_generation micro-batches it buffers. scpo's VoteTrainer overrides
`_generate_and_score_completions` only: it runs TRL's whole method once per round (generation, rewards,
advantages, old and reference log-probs), reads each group's rewards from `_calculate_rewards`, and
returns the kept groups as one generation batch of the usual size, so TRL's buffering, shuffling and
loss run unchanged. Advantages stay those of each group's own round (they are per group). The rules
(which group has a learning signal, when to stop, what to keep) are scpo/training/dynamic_sampling.py.

TRL's own metrics (reward, frac_reward_zero_std, rewards/*, ttrl/*) are appended once per round, so they
describe every generated rollout; `dynamic_sampling/*` describes the filter and the trained batch.
"""

from __future__ import annotations

from scpo.core.errors import ScpoError
from scpo.training.dynamic_sampling import Refill, signal_flags


def take_rows(outputs: list[dict], picks: list[tuple[int, int]], group_size: int, pad_id: int) -> dict:
    """The picked groups, (round, group), of several `_generate_and_score_completions` outputs as one output.

    Rounds pad to their own widths: prompt tensors (left-padded by TRL) are padded on the left, completion ones
    on the right, ids with `pad_id` and the rest (masks, log-probs, ratios) with 0, which the masks leave out.
    `num_items_in_batch` is left to the caller (it counts tokens over all processes)."""
    import torch
    import torch.nn.functional as F

    rows_of = [out["completion_ids"].size(0) for out in outputs]
    merged = {}
    for key in outputs[0]:
        if key == "num_items_in_batch":
            continue
        values = [out[key] for out in outputs]
        if not all(
            isinstance(v, torch.Tensor) and v.dim() in (1, 2) and v.size(0) == n for v, n in zip(values, rows_of)
        ):
            raise ScpoError(
                f"dynamic sampling cannot merge TRL's generation output {key!r} across rounds (images, "
                "tools and custom rollouts are not supported with dynamic_sampling)"
            )
        parts = []
        width = max(v.size(1) for v in values) if values[0].dim() == 2 else 0
        for r, g in picks:
            part = values[r][g * group_size : (g + 1) * group_size]
            if part.dim() == 2 and part.size(1) < width:
                pad = (width - part.size(1), 0) if key.startswith("prompt") else (0, width - part.size(1))
                part = F.pad(part, pad, value=pad_id if key.endswith("_ids") else 0)
            parts.append(part)
        merged[key] = torch.cat(parts, dim=0)
    return merged


def generate_with_refill(trainer, inputs: list[dict], score_round) -> dict:
    """`score_round(inputs)` (TRL's `_generate_and_score_completions`) until each process has its groups with a
    learning signal, or the round cap; logs `dynamic_sampling/*` in TRL's metrics dict."""
    from accelerate.utils import gather_object

    rule = trainer.dynamic_sampling
    size, acc = trainer.num_generations, trainer.accelerator
    local_groups = len(inputs) // size
    refill = Refill(local_groups, acc.num_processes, rule.max_rounds)
    weights = trainer.reward_weights.tolist()
    used = {
        str(i) for part in gather_object([[row.get("id", repr(row["prompt"])) for row in inputs[::size]]]) for i in part
    }
    outputs, round_inputs = [], inputs
    while True:
        outputs.append(score_round(round_inputs))
        rewards = trainer._rewards_per_func.tolist()  # every process's rows, in rank order (TRL gathers them)
        refill.add(signal_flags(rewards, weights, size, trainer.multi_objective_aggregation))
        if not refill.needs_another_round():
            break
        picked = trainer._refill_stream.take(local_groups * acc.num_processes, exclude=used)
        rows = [trainer.train_dataset[i] for i in picked]
        used |= {trainer._refill_stream.ids[i] for i in picked}
        mine = rows[acc.process_index * local_groups : (acc.process_index + 1) * local_groups]
        round_inputs = [dict(row) for row in mine for _ in range(size)]  # as TRL's RepeatSampler: G copies in a row
    picks = refill.selection(acc.process_index, rule.on_cap)
    pad_id = getattr(trainer, "_tokenizer", trainer.processing_class).pad_token_id or 0
    output = take_rows(outputs, picks, size, pad_id)
    mask = output["completion_mask"] * output.get("tool_mask", 1)
    output["num_items_in_batch"] = acc.gather(mask.sum()).sum()
    for name, value in refill.metrics(size).items():
        trainer._metrics["train"][name].append(value)
    trainer.rollouts_generated += refill.generated_groups * size
    return output
