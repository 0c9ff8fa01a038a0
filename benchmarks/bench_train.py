"""Training step time: the `scpo` loss against TRL's stock DPOTrainer on the same pairs, and the time the
sampler's reference log-probs save against TRL's `precompute_ref_log_probs`, in one run.

    python benchmarks/bench_train.py [--model embedded] [--pairs 64] [--steps 8] [--batch 4] [--rounds 3]

Pairs: the model's own greedy-free samples would need vLLM; here chosen/rejected are fixed texts of
realistic length, tokenised once, with reference log-probs computed as the sampler would give them.
Both trainers get the same data, batch, seed and precomputed reference; step times skip the first
(warm-up) step and are medians. TRL and scpo alternate for `rounds` rounds (this box's speed drifts by ~10%
between minutes); the ratio is the median of the rounds'. On a CPU with native bf16 the scpo step also runs
under bf16 autocast (what `bf16: true` does on such a CPU), with its per-token log-prob gap to float32. The
roofline line: the scpo step's FLOP/s (its real tokens/s x 6 x parameters) against a float32 torch matmul
with the same threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer

from scpo.core.devices import cpu_has_bf16
from scpo.core.models import resolve_model
from scpo.losses import LOSSES
from scpo.stages.train import to_sampler_tokens
from scpo.training.dpo import PairCollator, ScpoTrainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from roofline import line as roofline_line  # noqa: E402
from roofline import matmul_peak, parameters


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self._t = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t)


def make_pairs(tok, n: int) -> list[dict]:
    body = (
        "First we add the ones: {a} plus {b}. Then we carry if needed and write the tens. "
        "Checking again step by step, the total stays the same. "
    )
    rows = []
    for i in range(n):
        a, b = 17 * i % 89 + 10, 31 * i % 67 + 10
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
                "chosen": [{"role": "assistant", "content": body.format(a=a, b=b) * 2 + f"The answer is {a + b}."}],
                "rejected": [{"role": "assistant", "content": body.format(a=a, b=b) + f"The answer is {a + b + 1}."}],
                "weight": [0.25, 0.5, 0.75, 1.0][i % 4],
            }
        )
    return rows


def add_sampler_reference(rows: list[dict], tok, model) -> list[dict]:
    """What `scpo sample` writes: exact completion token ids and the sampler's summed log-probs."""
    out = []
    for r in rows:
        prompt = list(tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True)["input_ids"])
        row = dict(r)
        for side in ("chosen", "rejected"):
            ids = tok(r[side][0]["content"])["input_ids"] + [tok.eos_token_id]
            x = torch.tensor([prompt + ids])
            with torch.no_grad():
                lp = model(x).logits[0, :-1].log_softmax(-1)
            row[f"{side}_token_ids"] = ids
            row[f"ref_{side}_logps"] = lp[len(prompt) - 1 :][torch.arange(len(ids)), x[0, len(prompt) :]].sum().item()
        out.append(row)
    return out


def autocast_gap(model, tok, rows: list[dict]) -> tuple[float, float]:
    """Per-token |log p| difference of the pairs' completion tokens, bf16 autocast against float32 (mean, max)."""
    gaps = []
    for r in rows:
        prompt = list(tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True)["input_ids"])
        for side in ("chosen", "rejected"):
            ids = r[f"{side}_token_ids"]
            x = torch.tensor([prompt + ids])
            with torch.no_grad():
                exact = model(x).logits[0, :-1].float().log_softmax(-1)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    fast = model(x).logits[0, :-1].float().log_softmax(-1)
            picked = torch.arange(len(prompt) - 1, x.shape[1] - 1), x[0, len(prompt) :]
            gaps.extend((exact[picked] - fast[picked]).abs().tolist())
    return statistics.mean(gaps), max(gaps)


def config(out: str, steps: int, batch: int, precompute: bool, bf16: bool = False) -> DPOConfig:
    return DPOConfig(
        output_dir=out,
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=1e-6,
        beta=0.5,
        bf16=bf16,
        use_cpu=bf16,
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        precompute_ref_log_probs=precompute,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def run(kind: str, model_path: str, ds, tok, steps: int, batch: int, bf16: bool = False) -> tuple[float, float]:
    """(median step seconds, seconds spent building the trainer incl. any reference pass)."""
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    timer = StepTimer()
    loss = LOSSES.get("scpo")(SimpleNamespace(alpha=1.0))
    collator = PairCollator(pad_token_id=tok.pad_token_id, columns=loss.columns)
    with tempfile.TemporaryDirectory() as out:
        args = config(out, steps, batch, precompute=True, bf16=bf16)
        t0 = time.perf_counter()
        if kind == "trl":
            trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[timer])
        else:
            trainer = ScpoTrainer(
                model=model,
                args=args,
                train_dataset=ds,
                processing_class=tok,
                data_collator=collator,
                loss=loss,
                callbacks=[timer],
            )
        setup = time.perf_counter() - t0
        trainer.train()
    return statistics.median(timer.times[1:]), setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import datasets

    from scpo.core.memory import keep_freed_memory

    keep_freed_memory()  # as every scpo process (SCPO_KEEP_FREED_MEMORY=0: glibc's default)

    datasets.disable_progress_bars()
    torch.manual_seed(0)
    model_path = resolve_model(args.model)
    tok = AutoTokenizer.from_pretrained(model_path)
    rows = make_pairs(tok, args.pairs)
    reference = add_sampler_reference(rows, tok, AutoModelForCausalLM.from_pretrained(model_path).eval())
    text = datasets.Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected", "weight")} for r in rows])
    sampler = to_sampler_tokens(datasets.Dataset.from_list(reference), tok, columns=("weight",))

    trl_runs, scpo_runs = [], []
    for _ in range(args.rounds):
        trl_runs.append(run("trl", model_path, text, tok, args.steps, args.batch))
        scpo_runs.append(run("scpo", model_path, text, tok, args.steps, args.batch))
    trl_step, trl_setup = statistics.median(t for t, _ in trl_runs), trl_runs[-1][1]
    scpo_step, scpo_setup = statistics.median(t for t, _ in scpo_runs), scpo_runs[-1][1]
    ratios = [s / t for (t, _), (s, _) in zip(trl_runs, scpo_runs)]
    bf16_step = run("scpo", model_path, text, tok, args.steps, args.batch, bf16=True)[0] if cpu_has_bf16() else None
    _, sampler_setup = run("scpo", model_path, sampler, tok, 2, args.batch)
    print(
        f"\n{args.pairs} pairs, batch {args.batch}, {args.steps} steps, {args.rounds} rounds, "
        f"{model_path.split('/')[-1]}, CPU float32"
    )
    print(f"{'':<40} {'median step s':>14} {'setup s':>8}")
    print(f"{'TRL DPOTrainer (sigmoid), precompute ref':<40} {trl_step:>14.3f} {trl_setup:>8.1f}")
    print(f"{'scpo loss, precompute ref':<40} {scpo_step:>14.3f} {scpo_setup:>8.1f}")
    print(f"{'scpo loss, sampler ref (no ref pass)':<40} {'':>14} {sampler_setup:>8.1f}")
    if bf16_step is not None:
        print(f"{'scpo loss, bf16 autocast (bf16: true)':<40} {bf16_step:>14.3f}")
    print(
        f"\nstep time scpo / TRL: {statistics.median(ratios):.3f} (median of {args.rounds} rounds: "
        f"{', '.join(f'{r:.3f}' for r in ratios)}; target <= 1.05)"
    )
    if bf16_step is not None:
        mean_gap, max_gap = autocast_gap(AutoModelForCausalLM.from_pretrained(model_path).eval(), tok, reference)
        print(
            f"bf16 autocast: {scpo_step / bf16_step:.2f}x faster per step; per-token log-prob gap to float32 mean "
            f"{mean_gap:.4f}, max {max_gap:.4f} (the sampler-reference check tolerates 0.1)"
        )
    print(
        f"reference pass: precompute {scpo_setup:.1f} s vs sampler {sampler_setup:.1f} s "
        f"-> {scpo_setup / max(sampler_setup, 1e-9):.1f}x faster setup"
    )
    # a step trains on batch x (prompt + chosen, prompt + rejected): their real tokens (padding not counted)
    prompt = len(tok.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, tokenize=True)["input_ids"])
    per_pair = statistics.mean(
        2 * prompt + len(r["chosen_token_ids"]) + len(r["rejected_token_ids"]) for r in reference
    )
    threads = torch.get_num_threads()
    tokens_per_s, params = args.batch * per_pair / scpo_step, parameters(model_path)
    print(
        roofline_line(
            "training (scpo loss step)",
            6 * params * tokens_per_s,
            f"{tokens_per_s:.0f} tok/s x 6 x {params / 1e6:.0f}M params",
            matmul_peak("float32", threads),
            "float32",
            threads,
        )
    )


if __name__ == "__main__":
    main()
