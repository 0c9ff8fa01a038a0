"""Cost of the majority-vote rewards per rollout against the cost of generating the rollout.

    python benchmarks/bench_grpo_reward.py [--model embedded] [--prompts 8] [--k 8] [--max_new_tokens 16]

Generates k rollouts per prompt of the CPU demo's training data with transformers `generate` (sampled,
batched, as GRPOTrainer does on CPU), then times `scpo grpo`'s four reward functions (majority,
vote_share, gold, format: answer extraction, voting, stats) on exactly those rollouts, repeated until
the timing is stable. Prints both per rollout and their ratio. A second line times the rewards of the
`math` task on long synthetic solutions (~300 tokens, several equivalent LaTeX spellings, parsed by
math-verify with a fresh cache per batch), the expensive case, against the generation time of that many
tokens at the per-token cost measured in the first line.

A third line times the label-free token rewards (self_certainty, negative_entropy): the extra no-grad forward
of the policy over prompt + completion that their statistics need, against the same generation time.

Measured on the shared 2-core CPU box (OMP_NUM_THREADS=1, other jobs running): numeric 46 us vs 763 ms
per rollout (ratio 6e-5); math 8 ms vs ~14 s per rollout (ratio 6e-4). Each process votes on the whole
generation batch (the gathered groups), so with P processes the reward work is P-fold redundant, still
negligible.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from roofline import line as roofline_line  # noqa: E402
from roofline import matmul_peak, parameters


def generate(model_path: str, prompts: list[dict], task, k: int, max_new_tokens: int):
    """(completions, seconds, the model, prompt ids per rollout, completion ids per rollout up to its EOS)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scpo.core.rows import prompt_of
    from scpo.sampling import prompt_text

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    texts = [
        prompt_text(tok, prompt_of(p, task)) for p in prompts for _ in range(k)
    ]  # each prompt's rollouts next to each other, as TRL lays them out
    enc = tok(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
    seconds = time.perf_counter() - started
    new = out[:, enc["input_ids"].size(1) :]
    prompt_ids = [row[mask.bool()].tolist() for row, mask in zip(enc["input_ids"], enc["attention_mask"])]
    completion_ids = []
    for row in new.tolist():
        end = next((i + 1 for i, t in enumerate(row) if t == tok.eos_token_id), len(row))
        completion_ids.append(row[:end])
    return tok.batch_decode(new, skip_special_tokens=True), seconds, model, prompt_ids, completion_ids


def time_token_rewards(model, prompt_ids, completion_ids, min_seconds: float = 1.0) -> float:
    """Seconds per rollout of the label-free token rewards: the policy forward (scpo/training/token_stats.py) and
    self_certainty + negative_entropy on its statistics."""
    from scpo.rewards import REWARDS, RolloutBatch
    from scpo.training.token_stats import token_stats

    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_seconds:
        stats = token_stats(model, prompt_ids, completion_ids, 1.0, batch_size=16)
        batch = RolloutBatch(
            texts=[],
            answers=[],
            groups=[],
            group_golds=[],
            group_answers=[],
            local=slice(0, 0),
            task=None,
            token_stats=stats,
        )
        for name in ("self_certainty", "negative_entropy"):
            cls = REWARDS.get(name)
            cls(cls.settings() if cls.settings else None)(batch)
        runs += 1
    return (time.perf_counter() - started) / runs / len(completion_ids)


def time_rewards(make_task, prompts: list[dict], completions: list[str], k: int, min_seconds: float = 1.0) -> float:
    """Seconds per rollout for all four reward functions on one batch (one process).

    A fresh task per run: the `math` task caches parsed answers, and a training batch brings new ones.
    """
    from scpo.training.grpo import GroupVoter, reward_functions

    ids = [str(p["id"]) for p in prompts for _ in range(k)]
    golds = [p.get("gold") for p in prompts for _ in range(k)]
    prompt_texts = [str(p["prompt"]) for p in prompts for _ in range(k)]
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_seconds:
        voter = GroupVoter(make_task(), group_size=lambda: k, n_samples=lambda: k, rank=lambda: 0)
        funcs = reward_functions(["majority", "vote_share", "gold", "format"], voter)
        batch = list(completions)  # a new batch object each run: no vote is reused across runs
        for f in funcs:
            f(prompts=prompt_texts, completions=batch, id=ids, gold=golds, log_metric=lambda name, value: None)
        runs += 1
    return (time.perf_counter() - started) / runs / len(completions)


def long_math_rollouts(prompts: int, k: int, seed: int = 0) -> tuple[list[dict], list[str]]:
    rng = random.Random(seed)
    spellings = ["\\frac{{{n}}}{{{d}}}", "\\dfrac{{{n}}}{{{d}}}", "{n}/{d}", "\\frac{{{n2}}}{{{d2}}}"]
    filler = "We expand the expression, collect like terms and simplify step by step. " * 20
    problems, completions = [], []
    for p in range(prompts):
        problems.append({"id": f"m{p}", "prompt": f"problem {p}", "gold": f"\\frac{{{p + 1}}}{{{p + 2}}}"})
        for _ in range(k):
            n, d = rng.choice([(p + 1, p + 2), (p + 2, p + 3), (p + 3, p + 5)])
            answer = rng.choice(spellings).format(n=n, d=d, n2=2 * n, d2=2 * d)
            completions.append(f"{filler}Therefore the answer is $\\boxed{{{answer}}}$.")
    return problems, completions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=16)
    args = parser.parse_args()

    from scpo.core.models import resolve_model
    from scpo.tasks import get_task

    task = get_task("numeric", instruction="Answer with just the final number.")
    rows = [json.loads(line) for line in (ROOT / "recipes" / "cpu_demo" / "train.jsonl").read_text().splitlines()]
    prompts = rows[: args.prompts]
    completions, gen_seconds, model, prompt_ids, completion_ids = generate(
        resolve_model(args.model), prompts, task, args.k, args.max_new_tokens
    )
    gen_per_rollout = gen_seconds / len(completions)
    reward_per_rollout = time_rewards(lambda: task, prompts, completions, args.k)
    print(
        f"numeric, {args.model}, {len(completions)} rollouts x {args.max_new_tokens} new tokens (transformers, CPU): "
        f"generation {gen_per_rollout * 1e3:.1f} ms/rollout, rewards {reward_per_rollout * 1e6:.1f} us/rollout, "
        f"ratio reward/generation {reward_per_rollout / gen_per_rollout:.2e}"
    )
    token_per_rollout = time_token_rewards(model, prompt_ids, completion_ids)
    print(
        f"label-free token rewards (self_certainty, negative_entropy: one policy forward over prompt + completion): "
        f"{token_per_rollout * 1e3:.2f} ms/rollout, ratio to generation {token_per_rollout / gen_per_rollout:.3f}"
    )
    from transformers import AutoTokenizer

    math_problems, math_completions = long_math_rollouts(args.prompts, args.k)
    math_per_rollout = time_rewards(lambda: get_task("math"), math_problems, math_completions, args.k)
    tokens = len(AutoTokenizer.from_pretrained(resolve_model(args.model))(math_completions[0])["input_ids"])
    # Generating such a rollout costs at least `tokens` decoding steps at the per-token cost measured above.
    math_gen = gen_per_rollout / args.max_new_tokens * tokens
    print(
        f"math, {len(math_completions)} synthetic rollouts of {tokens} tokens (answers parsed by math-verify, no "
        f"cache): rewards {math_per_rollout * 1e3:.2f} ms/rollout; generating {tokens} tokens at the per-token cost "
        f"above ~{math_gen:.1f} s/rollout: ratio {math_per_rollout / math_gen:.2e}"
    )
    import torch

    tokens_per_s = sum(len(c) for c in completion_ids) / gen_seconds  # up to each EOS: the tokens that count
    params, threads = parameters(resolve_model(args.model)), torch.get_num_threads()
    print(
        roofline_line(
            "generation (transformers, the rewards' baseline)",
            2 * params * tokens_per_s,
            f"{tokens_per_s:.1f} output tok/s x 2 x {params / 1e6:.0f}M params",
            matmul_peak("float32", threads),
            "float32",
            threads,
        )
    )


if __name__ == "__main__":
    main()
