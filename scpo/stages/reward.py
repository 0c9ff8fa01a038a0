"""Internal-reward labelers: the model labels its own responses when there is no final answer to vote on.

`scpo label --labeler judge|implicit|cream|scir` (and `scpo pairs` with the same setting) run this
module instead of the votes labeler. The labelers use no gold; where a prompt has gold, rows get
`correct` for reporting only.

- judge (Self-Rewarding, Yuan et al. 2024): M_t scores each response with the additive 5-point
  prompt (`judge_template`, one prompt per response), `judge_samples` judge outputs per response
  averaged; unreadable outputs are recorded (`judge_unparsed`) and excluded. Judging runs through
  the sampling backends (vLLM, or `backend: hf`), with per-request seeds, in `num_shards` shards
  written atomically under `<labels_file>.judge_shards/<config hash>/` and never redone
  (`--shard_index i` judges one shard and stops, like `scpo sample`).
- implicit: the DPO implicit reward r_t(y) = log pi_t(y|x) - log pi_{t-1}(y|x) (sums over the
  response tokens), M_t the sampler (`model`) and M_{t-1} its reference (`reference_model`, the
  model M_t was trained from). For M_0 (no reference) r_0(y) = log pi_0(y|x) / |y|, the
  length-normalised log-likelihood. log pi_t comes from the samples rows (the sampler's raw
  log-probs over `completion_token_ids`); the reference's from one batched transformers forward.
- cream (Wang et al. 2025): the implicit reward, plus the previous iteration's reward of the same
  responses: r_{t-1}(y) = log pi_{t-1}(y|x) - log pi_{t-2}(y|x) (`previous_reference_model`), or
  log pi_{t-1}(y|x) / |y| when M_{t-1} is M_0. The pairs stage turns the two rankings into
  C = (Kendall tau + 1) / 2 per prompt. At t = 0 there is no previous model: C = 1 (plain DPO).
- scir (Zhou et al. 2025): both the judge and the implicit reward; the pairs stage keeps a pair
  only when every signal in `scir_rewards` prefers chosen with probability >= `scir_threshold`.

Labels rows: the sample rows plus `labeler`, `reward` (the reward the pair is picked by; None when
the response could not be scored), and per signal: `judge_scores` (one per judge output, None where
unreadable), `judge_outputs`, `judge_unparsed`, `judge_score` (mean of the readable scores);
`implicit_reward`, `policy_logp`, `reference_logp` (None at t = 0), `implicit_kind` (`dpo` |
`length_normalised`); `previous_reward`, `previous_kind` (cream).

Pairs rows: TRL's `prompt`, `chosen`, `rejected`, plus `id`, `weight` (1), `source` (the labeler),
`chosen_reward`, `rejected_reward`, `num_scored`, `consistency` (cream), `p_judge` / `p_implicit`
(scir: each signal's P(chosen > rejected)), `chosen_correct` (gold, reporting only) and the
sampler's reference log-probs and token ids, as for vote pairs.
"""

from __future__ import annotations

import gc
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scpo.consistency import CORRELATIONS, mean_and_std, scir_filter
from scpo.errors import ScpoError
from scpo.io import config_digest, file_digest, read_rows, write_rows
from scpo.judge import (
    DEFAULT_PAIRWISE_TEMPLATE,
    DEFAULT_TEMPLATE,
    mean_score,
    ordered_pairs,
    pairwise_scores,
    parse_score,
    render,
    render_pairwise,
)
from scpo.reward_pairs import LABELERS, REWARD_SIGNALS, reward_pick
from scpo.sampling import Request, request_seed
from scpo.settings import asdict, parse_settings
from scpo.stages.common import iter_file, run_once
from scpo.stages.label import group_by_prompt
from scpo.stages.model import resolve_model
from scpo.stages.pairs import messages_of, sampler_columns
from scpo.tasks import Task, get_task

SAMPLE_FIELDS = {"id": (str, int), "prompt": (str, list), "completion": str}
LABEL_FIELDS = {**SAMPLE_FIELDS, "labeler": str}
NEEDS_JUDGE = ("judge", "scir")
NEEDS_IMPLICIT = ("implicit", "cream", "scir")


@dataclass
class RewardSettings:
    labeler: str = "votes"  # votes (scpo label's own) | judge | implicit | cream | scir
    model: str = "embedded"  # M_t: the sampler, the judge, the implicit reward's policy
    reference_model: str | None = None  # M_{t-1}, M_t's DPO reference; none for M_0
    previous_reference_model: str | None = None  # M_{t-2} (cream: the previous iteration's reference)
    task: str = "gsm8k"
    task_options: dict = field(default_factory=dict)
    iter_dir: str | None = None
    samples_file: str | None = None
    labels_file: str | None = None
    pairs_file: str | None = None
    # judge
    judge_template: str = DEFAULT_TEMPLATE  # needs {instruction} and {response}
    judge_samples: int = 3  # judge outputs per response, averaged
    judge_temperature: float = 0.7
    judge_top_p: float = 0.9
    judge_max_tokens: int = 256
    judge_response_prefix: str = ""  # text the judge's answer starts with (e.g. "Score:" for tiny models)
    judge_max_score: float = 5.0
    judge_pairwise: bool = False  # compare each two responses (in both orders) instead of scoring each alone
    judge_pairwise_template: str = DEFAULT_PAIRWISE_TEMPLATE  # needs {instruction}, {response_a}, {response_b}
    # cream
    consistency_metric: str = "kendall"  # or spearman
    # scir
    scir_rewards: list[str] = field(default_factory=lambda: ["judge", "implicit"])  # the first picks the pair
    scir_threshold: float = 0.5  # keep a pair when every signal gives P(chosen > rejected) >= this (and > 0.5)
    scir_scales: dict = field(default_factory=lambda: {"judge": 1.0, "implicit": 10.0})  # P = sigmoid(diff / scale)
    # engines
    backend: str = "vllm"
    seed: int = 0
    dtype: str = "auto"
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    enforce_eager: bool = False
    vllm_kwargs: dict = field(default_factory=dict)
    num_shards: int = 1
    shard_index: int | None = None
    score_batch_size: int = 8  # responses per transformers forward (implicit reward)
    iteration: int = 0
    overwrite: bool = False

    def __post_init__(self):
        if self.labeler not in LABELERS:
            raise ScpoError(f"setting labeler={self.labeler!r}: expected one of {LABELERS}")
        # "" from a shell loop that has no previous model yet means "none"
        self.reference_model = self.reference_model or None
        self.previous_reference_model = self.previous_reference_model or None
        if self.judge_samples < 1:
            raise ScpoError(f"setting judge_samples={self.judge_samples}: need at least one judge output")
        if self.consistency_metric not in CORRELATIONS:
            raise ScpoError(f"setting consistency_metric={self.consistency_metric!r}: expected one of "
                            f"{sorted(CORRELATIONS)}")
        unknown = [r for r in self.scir_rewards if r not in REWARD_SIGNALS]
        if unknown or (self.labeler == "scir" and len(self.scir_rewards) < 2):
            raise ScpoError(f"setting scir_rewards={self.scir_rewards}: expected two or more of {REWARD_SIGNALS}")
        if not 0 <= self.scir_threshold < 1:
            raise ScpoError(f"setting scir_threshold={self.scir_threshold}: must be in [0, 1)")
        if any(not isinstance(v, (int, float)) or v <= 0 for v in self.scir_scales.values()):
            raise ScpoError(f"setting scir_scales={self.scir_scales}: every scale must be a number > 0")
        if "{instruction}" not in self.judge_template or "{response}" not in self.judge_template:
            raise ScpoError("setting judge_template: must contain {instruction} and {response}")
        if self.judge_pairwise and any(f not in self.judge_pairwise_template
                                       for f in ("{instruction}", "{response_a}", "{response_b}")):
            raise ScpoError("setting judge_pairwise_template: must contain {instruction}, {response_a} and {response_b}")
        if self.num_shards < 1 or (self.shard_index is not None and not 0 <= self.shard_index < self.num_shards):
            raise ScpoError(f"settings num_shards={self.num_shards}, shard_index={self.shard_index}: "
                            "need num_shards >= 1 and 0 <= shard_index < num_shards")


def instruction_of(row: dict, task: Task) -> str:
    """What the judge sees as the user's question: the last user turn that was sampled."""
    users = [m["content"] for m in messages_of(row, task) if m.get("role") == "user"]
    return users[-1] if users else str(row["prompt"])


# ---------------------------------------------------------------------------------------------- judge

JUDGE_KEYS = ("judge_template", "judge_pairwise", "judge_pairwise_template", "judge_samples", "judge_temperature", "judge_top_p", "judge_max_tokens",
              "judge_response_prefix", "seed", "dtype", "max_model_len", "backend", "vllm_kwargs")


def judge_sampler(s: RewardSettings, model_path: str):
    """The sampling backend of `scpo sample`, set up for judging."""
    from scpo.stages.sample import SampleSettings, make_sampler

    return make_sampler(SampleSettings(
        model=model_path, top_p=s.judge_top_p, max_tokens=s.judge_max_tokens, seed=s.seed, dtype=s.dtype,
        max_model_len=s.max_model_len, tensor_parallel_size=s.tensor_parallel_size,
        gpu_memory_utilization=s.gpu_memory_utilization, enforce_eager=s.enforce_eager,
        vllm_kwargs=s.vllm_kwargs, backend=s.backend), model_path)


def judge_items(rows: list[dict], s: RewardSettings, task: Task) -> list[dict]:
    """What the judge is asked: one item per response, or (pairwise) one per ordered pair of a prompt's responses.

    Items carry `rows`: the indices of the responses they judge (one, or A then B).
    """
    if not s.judge_pairwise:
        return [{"key": f"{row['id']}:{row.get('sample_index', i)}:judge", "rows": [i],
                 "text": render(s.judge_template, instruction_of(row, task), row["completion"])}
                for i, row in enumerate(rows)]
    index = {id(row): i for i, row in enumerate(rows)}
    items = []
    for prompt_rows in group_by_prompt(rows).values():
        for a, b in ordered_pairs(len(prompt_rows)):
            ra, rb = prompt_rows[a], prompt_rows[b]
            items.append({"key": f"{ra['id']}:{ra.get('sample_index', a)}:{rb.get('sample_index', b)}:pairwise",
                          "rows": [index[id(ra)], index[id(rb)]],
                          "text": render_pairwise(s.judge_pairwise_template, instruction_of(ra, task),
                                                  ra["completion"], rb["completion"])})
    return items


def judge_requests(items: list[dict], tokenizer, s: RewardSettings, max_len: int) -> tuple[list[Request], list[int]]:
    """One request per item (n = judge_samples, seeded by its key); the indices of the items that fit the model."""
    prefix = tokenizer(s.judge_response_prefix, add_special_tokens=False)["input_ids"] if s.judge_response_prefix else []
    from scpo.scoring import prompt_ids

    requests, kept = [], []
    for j, item in enumerate(items):
        ids = prompt_ids(tokenizer, [{"role": "user", "content": item["text"]}]) + prefix
        if len(ids) + 1 >= max_len:
            print(f"[label] warning: judge prompt {item['key']!r} has {len(ids)} tokens >= max_model_len {max_len}; "
                  "not judged", file=sys.stderr)
            continue
        requests.append(Request(key=item["key"], prompt_token_ids=ids, n=s.judge_samples,
                                temperature=s.judge_temperature, seed=request_seed(s.seed, item["key"])))
        kept.append(j)
    return requests, kept


def judge_outputs(items: list[dict], s: RewardSettings, model_path: str, labels: str,
                  samples_digest: str) -> list[list[str]] | None:
    """Every item's judge outputs (texts, prefix included), through resumable shards; None after one shard."""
    from scpo.stages.sample import model_fingerprint, shard_bounds

    config = {key: getattr(s, key) for key in JUDGE_KEYS}
    config.update(model=model_path, model_weights=model_fingerprint(model_path), samples=samples_digest)
    shard_dir = Path(labels + ".judge_shards") / config_digest(config)

    def shard_file(i: int) -> Path:
        return shard_dir / f"{i:05d}-of-{s.num_shards:05d}.jsonl"

    shards = [s.shard_index] if s.shard_index is not None else list(range(s.num_shards))
    pending = [i for i in shards if s.overwrite or not shard_file(i).exists()]
    if pending:
        sampler = judge_sampler(s, model_path)
        tokenizer = sampler.tokenizer()
        for i in pending:
            lo, hi = shard_bounds(len(items), s.num_shards, i)
            t0 = time.time()
            requests, kept = judge_requests(items[lo:hi], tokenizer, s, sampler.max_model_len)
            outs: list[list[str]] = [[] for _ in range(hi - lo)]
            for j, gens in zip(kept, sampler.generate(requests) if requests else []):
                outs[j] = [s.judge_response_prefix + g.text for g in gens]
            write_rows(shard_file(i), [{"row": lo + j, "outputs": o} for j, o in enumerate(outs)])
            print(f"[label] judge shard {i + 1}/{s.num_shards}: {hi - lo} items, {len(requests) * s.judge_samples} "
                  f"judge outputs in {time.time() - t0:.1f}s")
        del sampler
        gc.collect()
    if s.shard_index is not None:
        return None
    missing = [i for i in range(s.num_shards) if not shard_file(i).exists()]
    if missing:
        raise ScpoError(f"judge shards {missing} of {s.num_shards} are not done yet in {shard_dir}")
    out: list[list[str]] = []
    for i in range(s.num_shards):
        out.extend(r["outputs"] for r in read_rows(shard_file(i), allow_empty=True))
    if len(out) != len(items):
        raise ScpoError(f"{shard_dir}: {len(out)} judged items, expected {len(items)}; re-run with --overwrite")
    return out


# ------------------------------------------------------------------------------------------- implicit

def sampler_logps_usable(rows: list[dict], model_path: str) -> bool:
    """The rows' `logprob` is log pi_t(y|x) over the exact sampled tokens when M_t sampled them."""
    return all(r.get("logprob") is not None and r.get("completion_token_ids") is not None
               and r.get("sampler") and Path(r["sampler"]).resolve() == Path(model_path).resolve() for r in rows)


def forward_logps(model_path: str, rows: list[dict], s: RewardSettings, task: Task) -> list[float]:
    from scpo.scoring import SequenceScorer

    t0 = time.time()
    scorer = SequenceScorer(model_path, dtype=s.dtype, batch_size=s.score_batch_size)
    logps = scorer.logps(rows, lambda r: messages_of(r, task))
    del scorer
    gc.collect()
    print(f"[label] log-probs of {len(rows)} responses under {model_path}: {time.time() - t0:.1f}s")
    return logps


def length_normalised(logps: list[float], rows: list[dict]) -> list[float]:
    return [lp / max(1, int(r.get("num_tokens") or 1)) for lp, r in zip(logps, rows)]


def implicit_rewards(rows: list[dict], s: RewardSettings, task: Task, model_path: str) -> dict:
    """Per-response columns: policy_logp, reference_logp, implicit_reward, implicit_kind (and previous_* for cream)."""
    policy = [float(r["logprob"]) for r in rows] if sampler_logps_usable(rows, model_path) else \
        forward_logps(model_path, rows, s, task)
    reference = forward_logps(resolve_model(s.reference_model), rows, s, task) if s.reference_model else None
    columns = {"policy_logp": policy, "reference_logp": reference or [None] * len(rows)}
    if reference is None:
        columns["implicit_reward"] = length_normalised(policy, rows)
        columns["implicit_kind"] = "length_normalised"
    else:
        columns["implicit_reward"] = [p - q for p, q in zip(policy, reference)]
        columns["implicit_kind"] = "dpo"
    if s.labeler == "cream" and reference is not None:  # the previous iteration's model M_{t-1} rewards the same responses
        if s.previous_reference_model:
            before = forward_logps(resolve_model(s.previous_reference_model), rows, s, task)
            columns["previous_reward"] = [p - q for p, q in zip(reference, before)]
            columns["previous_kind"] = "dpo"
        else:
            columns["previous_reward"] = length_normalised(reference, rows)
            columns["previous_kind"] = "length_normalised"
    return columns


# ---------------------------------------------------------------------------------------------- label

def correctness(rows: list[dict], task: Task) -> list[bool | None]:
    """Gold correctness for reporting only; the labelers never read it."""
    out = []
    for r in rows:
        if r.get("gold") is None:
            out.append(None)
            continue
        answer = task.vote_answer(r["completion"], r.get("finish_reason") == "length")
        gold = task.extract_gold(str(r["gold"]))
        out.append(answer is not None and gold is not None and task.equivalent(answer, gold))
    return out


def label_config(s: RewardSettings, model_path: str) -> dict:
    from scpo.stages.sample import model_fingerprint

    config = {k: v for k, v in asdict(s).items() if k not in (
        "iter_dir", "samples_file", "labels_file", "pairs_file", "num_shards", "shard_index", "score_batch_size",
        "overwrite", "iteration", "gpu_memory_utilization", "enforce_eager", "tensor_parallel_size", "vllm_kwargs")}
    for key, path in (("model", model_path), ("reference_model", s.reference_model),
                      ("previous_reference_model", s.previous_reference_model)):
        if path:
            resolved = resolve_model(path)
            config[key] = resolved
            config[key + "_weights"] = model_fingerprint(resolved)
    return config


def judge_columns(rows: list[dict], items: list[dict], outputs: list[list[str]],
                  s: RewardSettings) -> tuple[list[dict], dict]:
    """Per-response judge columns and counts: each response's own scores, or (pairwise) its win-rate score."""
    if not s.judge_pairwise:
        columns = []
        for texts in outputs:  # items are the responses, in order
            scores = [parse_score(text, s.judge_max_score) for text in texts]
            columns.append({"judge_outputs": texts, "judge_scores": scores,
                            "judge_unparsed": sum(x is None for x in scores), "judge_score": mean_score(scores)})
        unparsed = sum(c["judge_unparsed"] for c in columns)
    else:
        by_row: dict[int, list] = {}
        for item, texts in zip(items, outputs):
            by_row.setdefault(item["rows"][0], []).append((item["rows"][0], item["rows"][1], texts))
        columns = [{} for _ in rows]
        unparsed = 0
        for prompt_rows in group_by_prompt([{**r, "_i": i} for i, r in enumerate(rows)]).values():
            where = [r["_i"] for r in prompt_rows]
            local = {g: j for j, g in enumerate(where)}
            comparisons = [(local[a], local[b], texts) for g in where for a, b, texts in by_row.get(g, [])]
            scores, missed = pairwise_scores(len(where), comparisons, s.judge_max_score)
            unparsed += sum(missed) // 2  # each unreadable verdict was counted for both responses
            for j, g in enumerate(where):
                columns[g] = {"judge_score": scores[j], "judge_unparsed": missed[j],
                              "judge_comparisons": 2 * (len(where) - 1) * s.judge_samples}
    total = sum(len(texts) for texts in outputs)
    readable = [c["judge_score"] for c in columns if c["judge_score"] is not None]
    counts = {"judge_outputs": total, "judge_unparsed": unparsed,
              "judge_unparsed_share": round(unparsed / total, 4) if total else None,
              "mean_judge_score": round(sum(readable) / len(readable), 4) if readable else None}
    if s.judge_pairwise:
        counts["judge_pairwise"] = True
    return columns, counts


def label_rows(rows: list[dict], s: RewardSettings, task: Task, judged: tuple[list[dict], dict] | None,
               implicit: dict | None) -> tuple[list[dict], dict]:
    correct = correctness(rows, task)
    out, unscored = [], 0
    for i, row in enumerate(rows):
        labeled = {**row, "labeler": s.labeler}
        if judged is not None:
            labeled.update(judged[0][i])
        if implicit is not None:
            for key, values in implicit.items():
                labeled[key] = values if isinstance(values, str) else values[i]
        primary = s.scir_rewards[0] if s.labeler == "scir" else ("judge" if s.labeler == "judge" else "implicit")
        labeled["reward"] = labeled["judge_score"] if primary == "judge" else labeled["implicit_reward"]
        unscored += labeled["reward"] is None
        if correct[i] is not None:
            labeled["correct"] = correct[i]
        out.append(labeled)
    counts = {"labeler": s.labeler, "prompts": len(group_by_prompt(rows)), "completions": len(rows),
              "unscored_completions": unscored}
    if judged is not None:
        counts.update(judged[1])
    if implicit is not None:
        counts["implicit_kind"] = implicit["implicit_kind"]
        if "previous_kind" in implicit:
            counts["previous_kind"] = implicit["previous_kind"]
    return out, counts


def run_label(s: RewardSettings) -> dict | None:
    samples = iter_file(s.iter_dir, s.samples_file, "samples.jsonl")
    labels = iter_file(s.iter_dir, s.labels_file, "labels.jsonl")
    task = get_task(s.task, **s.task_options)
    model_path = resolve_model(s.model)
    config = label_config(s, model_path)
    if s.shard_index is not None:  # one judge shard (a Slurm array task); the labels are written by a full run
        if s.labeler not in NEEDS_JUDGE:
            raise ScpoError(f"setting shard_index: only the judge labelers are sharded (labeler={s.labeler})")
        rows = read_rows(samples, required=SAMPLE_FIELDS)
        judge_outputs(judge_items(rows, s, task), s, model_path, labels, file_digest(samples))
        return None

    def body() -> dict:
        rows = read_rows(samples, required=SAMPLE_FIELDS)
        # The forward passes first: the transformers model is freed before the vLLM engine takes memory.
        implicit = implicit_rewards(rows, s, task, model_path) if s.labeler in NEEDS_IMPLICIT else None
        judged = None
        if s.labeler in NEEDS_JUDGE:
            items = judge_items(rows, s, task)
            judged = judge_columns(rows, items, judge_outputs(items, s, model_path, labels, file_digest(samples)), s)
        labeled, counts = label_rows(rows, s, task, judged, implicit)
        write_rows(labels, labeled)
        print(f"[label] {labels}: {counts}")
        return counts

    return run_once("label", labels, config, [samples], body, s.overwrite)


# ---------------------------------------------------------------------------------------------- pairs

def pair_row(rows: list[dict], pick, s: RewardSettings, task: Task) -> dict:
    c, r = rows[pick.chosen], rows[pick.rejected]
    pair = {
        "id": c["id"],
        "prompt": messages_of(c, task),
        "chosen": [{"role": "assistant", "content": c["completion"]}],
        "rejected": [{"role": "assistant", "content": r["completion"]}],
        "weight": 1.0,
        "source": s.labeler,
        "chosen_reward": pick.chosen_reward,
        "rejected_reward": pick.rejected_reward,
        "num_scored": sum(x.get("reward") is not None for x in rows),
    }
    if pick.consistency is not None or s.labeler == "cream":
        # No previous model (t = 0): the labels are trusted as they are, C = 1 (plain DPO).
        pair["consistency"] = 1.0 if pick.consistency is None else pick.consistency
    for name, p in pick.probabilities.items():
        pair[f"p_{name}"] = p
    if c.get("correct") is not None:
        pair["chosen_correct"] = c["correct"]
    if c.get("origin"):
        pair["origin"] = c["origin"]
    pair.update(sampler_columns(c, r))
    return pair


def build_reward_pairs(rows: list[dict], s: RewardSettings, task: Task) -> tuple[list[dict], dict]:
    skipped: Counter = Counter()
    candidates = []
    by_prompt = group_by_prompt(rows)
    for prompt_rows in by_prompt.values():
        labelers = {r.get("labeler") for r in prompt_rows}
        if labelers != {s.labeler}:
            raise ScpoError(f"prompt {prompt_rows[0]['id']!r}: labels made by {sorted(map(str, labelers))}, not by "
                            f"labeler={s.labeler}; run scpo label with the same labeler")
        rewards = [r.get("reward") for r in prompt_rows]
        previous = [r.get("previous_reward") for r in prompt_rows] \
            if s.labeler == "cream" and any(r.get("previous_reward") is not None for r in prompt_rows) else None
        signals = None
        if s.labeler == "scir":
            column = {"judge": "judge_score", "implicit": "implicit_reward"}
            signals = {name: [r.get(column[name]) for r in prompt_rows] for name in s.scir_rewards}
        pick = reward_pick(rewards, s.seed, prompt_rows[0]["id"], previous=previous, metric=s.consistency_metric,
                           signals=signals, scales=s.scir_scales)
        if isinstance(pick, str):
            skipped[pick] += 1
            continue
        candidates.append({"pair": pair_row(prompt_rows, pick, s, task), "probabilities": pick.probabilities})
    counts: dict = {"labeler": s.labeler, "prompts": len(by_prompt), "candidates": len(candidates)}
    if s.labeler == "scir":
        kept, rate = scir_filter(candidates, s.scir_threshold)
        skipped["disagree"] = len(candidates) - len(kept)
        counts["agreement_rate"] = None if math.isnan(rate) else round(rate, 4)
        candidates = kept
    pairs = [c["pair"] for c in candidates]
    counts.update(pairs=len(pairs), skipped=dict(skipped))
    if pairs:
        counts["mean_weight"] = 1.0
        counts["mean_reward_gap"] = round(sum(p["chosen_reward"] - p["rejected_reward"] for p in pairs) / len(pairs), 4)
        judged = [p["chosen_correct"] for p in pairs if "chosen_correct" in p]
        if judged:
            counts["chosen_accuracy"] = round(sum(judged) / len(judged), 4)
    if s.labeler == "cream" and pairs:
        mean, std = mean_and_std([p["consistency"] for p in pairs])
        counts.update(consistency_mean=round(mean, 4), consistency_std=round(std, 4),
                      consistency_metric=s.consistency_metric,
                      consistency_from_previous=previous_available(rows))
    return pairs, counts


def previous_available(rows: list[dict]) -> bool:
    return any(r.get("previous_reward") is not None for r in rows)


def run_pairs(s: RewardSettings) -> dict:
    labels = iter_file(s.iter_dir, s.labels_file, "labels.jsonl")
    out = iter_file(s.iter_dir, s.pairs_file, "pairs.jsonl")
    task = get_task(s.task, **s.task_options)
    config = {k: getattr(s, k) for k in ("labeler", "seed", "consistency_metric", "scir_rewards", "scir_threshold",
                                          "scir_scales", "task", "task_options")}

    def body() -> dict:
        rows = read_rows(labels, required=LABEL_FIELDS)
        pairs, counts = build_reward_pairs(rows, s, task)
        if not pairs:
            raise ScpoError(f"{labels}: 0 pairs from {counts['prompts']} prompts (skipped: {counts['skipped']}); "
                            "sample more responses per prompt, raise the temperature, or lower scir_threshold")
        write_rows(out, pairs)
        print(f"[pairs] {out}: {counts}")
        return counts

    return run_once("pairs", out, config, [labels], body, s.overwrite)


def main_label(argv: list[str]) -> dict | None:
    return run_label(parse_settings(RewardSettings, argv))


def main_pairs(argv: list[str]) -> dict:
    return run_pairs(parse_settings(RewardSettings, argv))

