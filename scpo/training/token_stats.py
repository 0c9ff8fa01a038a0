"""The policy's own next-token distributions over its rollouts: per-token entropy and self-certainty.

For the label-free GRPO rewards (scpo/rewards/self_certainty.py, negative_entropy.py). One no-grad forward of
the policy over prompt + completion, in chunks; for completion token t with logits z_t (divided by the
sampling temperature, as TRL's log-probs and Intuitor's verl code do):

    entropy        H_t  = -sum_j p_j log p_j                     (p = softmax(z_t))
    self-certainty SC_t = KL(U || p) = -log V - (1/V) sum_j log p_j = logsumexp(z_t) - mean(z_t) - log V

(Intuitor's code, verl `self_certainty_from_logits`, drops the constant -log V; it does not change GRPO's
group-normalised advantages.) Prompts are left-padded and completions right-padded as TRL does, with
position ids counted from the first real token, so a row's values do not depend on the other rows of its
chunk. Every token of a completion counts: up to and including its EOS, all of it when it was cut off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class TokenStats:
    entropy: list[float]  # per completion token
    self_certainty: list[float]


def token_stats(
    model,
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    temperature: float = 1.0,
    pad_token_id: int = 0,
    batch_size: int = 8,
) -> list[TokenStats]:
    import torch

    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts for {len(completion_ids)} completions")
    device = next(model.parameters()).device
    out: list[TokenStats] = []
    with torch.no_grad():
        for start in range(0, len(prompt_ids), batch_size):
            prompts, completions = prompt_ids[start : start + batch_size], completion_ids[start : start + batch_size]
            p_len, c_len = max(len(p) for p in prompts), max((len(c) for c in completions), default=0)
            if c_len == 0:
                out += [TokenStats([], []) for _ in prompts]
                continue
            ids = torch.full((len(prompts), p_len + c_len), pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, (p, c) in enumerate(zip(prompts, completions)):
                ids[i, p_len - len(p) : p_len] = torch.tensor(p, dtype=torch.long)
                ids[i, p_len : p_len + len(c)] = torch.tensor(c, dtype=torch.long)
                mask[i, p_len - len(p) : p_len + len(c)] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            # Only the positions that predict completion tokens (p_len - 1 .. p_len + c_len - 2) go through the
            # vocabulary projection: the prompt's logits are most of the cost and are not needed.
            logits = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                logits_to_keep=c_len + 1,
            ).logits
            z = logits[:, :c_len].float() / temperature
            log_z = torch.logsumexp(z, dim=-1)
            log_p = z - log_z.unsqueeze(-1)
            entropy = -(log_p.exp() * log_p).sum(dim=-1)
            certainty = log_z - z.mean(dim=-1) - math.log(z.size(-1))
            for i, c in enumerate(completions):
                out.append(TokenStats(entropy[i, : len(c)].tolist(), certainty[i, : len(c)].tolist()))
    return out
