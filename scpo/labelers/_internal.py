"""Internal-reward labelers (judge, implicit, cream, scir): the model labels its own responses with its own rewards.

Used when there is no final answer to vote on. The labelers read no gold; where a prompt has gold,
rows get `correct` for reporting only. This module holds what the four share: the judge
(Self-Rewarding's LLM-as-a-judge through the sampling backends, sharded and resumable), the implicit
DPO reward (one batched transformers forward for the models that did not sample), the labels rows
and the max-vs-min pair pick. Each labeler's file holds its settings and says which rewards it uses
(scir's settings include the judge's and the implicit reward's; cream's the implicit reward's).

Labels rows: the sample rows plus `labeler`, `reward` (the reward the pair is picked by; None when
the response could not be scored), and per signal: `judge_scores` (one per judge output, None where
unreadable), `judge_outputs`, `judge_unparsed`, `judge_score` (mean of the readable scores);
`implicit_reward`, `policy_logp`, `reference_logp` (None at t = 0), `implicit_kind` (`dpo` |
`length_normalised`); `previous_reward`, `previous_kind` (cream).

Pairs rows: TRL's `prompt`, `chosen`, `rejected`, plus `id`, `weight` (1), `source` (the labeler),
`chosen_reward`, `rejected_reward`, `num_scored`, `consistency` (cream), `p_judge` / `p_implicit`
(scir: each signal's P(chosen > rejected)), `chosen_correct` (gold, reporting only) and the
sampler's reference log-probs and token ids, as for vote pairs.

The labels manifest hashes the settings of the judge, CREAM and SCIR alike (`label_config_keys`), as it always
has: a labels file made by an earlier version stays valid.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from typing import ClassVar

from scpo.core.errors import ScpoError
from scpo.core.io import config_digest, file_digest, write_rows
from scpo.core.models import model_fingerprint, resolve_model
from scpo.core.rows import SAMPLE_FIELDS, group_by_prompt, prompt_of
from scpo.core.shards import ShardSet, shard_bounds
from scpo.judge import mean_score, ordered_pairs, pairwise_scores, parse_score, render, render_pairwise
from scpo.labelers._base import Choice, Labeler, LabelFiles, gold_correctness
from scpo.reward_pairs import reward_pick
from scpo.sampling import Request, make_sampler, prompt_ids, request_seed
from scpo.tasks import Task


def label_config_keys() -> tuple[str, ...]:
    """What the labels depend on, hashed into the labels manifest (besides the models' paths and weights): the
    judge's, CREAM's and SCIR's settings for every internal labeler, as when one block held them all."""
    import dataclasses

    from scpo.labelers.cream import CreamSettings
    from scpo.labelers.scir import ScirSettings

    own = dict.fromkeys(
        f.name for cls in (ScirSettings, CreamSettings) for f in dataclasses.fields(cls) if f.name != "score_batch_size"
    )  # how the forward passes are batched, not what they give
    return (
        "labeler",
        "task",
        "task_options",
        *own,
        "backend",
        "seed",
        "dtype",
        "max_model_len",
        "reference_model",
        "previous_reference_model",
    )


JUDGE_KEYS = (
    "judge_template",
    "judge_pairwise",
    "judge_pairwise_template",
    "judge_samples",
    "judge_temperature",
    "judge_top_p",
    "judge_max_tokens",
    "judge_response_prefix",
    "seed",
    "dtype",
    "max_model_len",
    "backend",
    "vllm_kwargs",
)


def instruction_of(row: dict, task: Task) -> str:
    """What the judge sees as the user's question: the last user turn that was sampled."""
    prompt = prompt_of(row, task)
    if isinstance(prompt, str):  # a plain-text prompt: the problem as the user wrote it
        return row["prompt"] if isinstance(row["prompt"], str) else prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else str(row["prompt"])


# ---------------------------------------------------------------------------------------------- judge


def judge_items(rows: list[dict], s, task: Task) -> list[dict]:
    """What the judge is asked: one item per response, or (pairwise) one per ordered pair of a prompt's responses.

    Items carry `rows`: the indices of the responses they judge (one, or A then B).
    """
    if not s.judge_pairwise:
        return [
            {
                "key": f"{row['id']}:{row.get('sample_index', i)}:judge",
                "rows": [i],
                "text": render(s.judge_template, instruction_of(row, task), row["completion"]),
            }
            for i, row in enumerate(rows)
        ]
    index = {id(row): i for i, row in enumerate(rows)}
    items = []
    for prompt_rows in group_by_prompt(rows).values():
        for a, b in ordered_pairs(len(prompt_rows)):
            ra, rb = prompt_rows[a], prompt_rows[b]
            items.append(
                {
                    "key": f"{ra['id']}:{ra.get('sample_index', a)}:{rb.get('sample_index', b)}:pairwise",
                    "rows": [index[id(ra)], index[id(rb)]],
                    "text": render_pairwise(
                        s.judge_pairwise_template, instruction_of(ra, task), ra["completion"], rb["completion"]
                    ),
                }
            )
    return items


def judge_requests(items: list[dict], tokenizer, s, max_len: int) -> tuple[list[Request], list[int]]:
    """One request per item (n = judge_samples, seeded by its key); the indices of the items that fit the model."""
    prefix = (
        tokenizer(s.judge_response_prefix, add_special_tokens=False)["input_ids"] if s.judge_response_prefix else []
    )
    requests, kept = [], []
    for j, item in enumerate(items):
        ids = prompt_ids(tokenizer, [{"role": "user", "content": item["text"]}]) + prefix
        if len(ids) + 1 >= max_len:
            print(
                f"[label] warning: judge prompt {item['key']!r} has {len(ids)} tokens >= max_model_len {max_len}; "
                "not judged",
                file=sys.stderr,
            )
            continue
        requests.append(
            Request(
                key=item["key"],
                prompt_token_ids=ids,
                n=s.judge_samples,
                temperature=s.judge_temperature,
                seed=request_seed(s.seed, item["key"]),
            )
        )
        kept.append(j)
    return requests, kept


def judge_outputs(items: list[dict], s, model_path: str, labels: str, samples_digest: str) -> list[list[str]] | None:
    """Every item's judge outputs (texts, prefix included), through resumable shards; None after one shard."""
    config = {key: getattr(s, key) for key in JUDGE_KEYS}
    config.update(model=model_path, model_weights=model_fingerprint(model_path), samples=samples_digest)
    shards = ShardSet(Path(labels + ".judge_shards") / config_digest(config), s.num_shards)
    todo = [s.shard_index] if s.shard_index is not None else list(range(s.num_shards))
    pending = shards.pending(todo, s.overwrite)
    if pending:
        sampler = make_sampler(model_path, s, top_p=s.judge_top_p, top_k=None, max_tokens=s.judge_max_tokens)
        tokenizer = sampler.tokenizer()
        for i in pending:
            lo, hi = shard_bounds(len(items), s.num_shards, i)
            t0 = time.time()
            requests, kept = judge_requests(items[lo:hi], tokenizer, s, sampler.max_model_len)
            outs: list[list[str]] = [[] for _ in range(hi - lo)]
            for j, gens in zip(kept, sampler.generate(requests) if requests else []):
                outs[j] = [s.judge_response_prefix + g.text for g in gens]
            write_rows(shards.file(i), [{"row": lo + j, "outputs": o} for j, o in enumerate(outs)])
            print(
                f"[label] judge shard {i + 1}/{s.num_shards}: {hi - lo} items, {len(requests) * s.judge_samples} "
                f"judge outputs in {time.time() - t0:.1f}s"
            )
        del sampler
        gc.collect()
    if s.shard_index is not None:
        return None
    missing = shards.missing()
    if missing:
        raise ScpoError(f"judge shards {missing} of {s.num_shards} are not done yet in {shards.folder}")
    out = [r["outputs"] for r in shards.read_all()]
    if len(out) != len(items):
        raise ScpoError(f"{shards.folder}: {len(out)} judged items, expected {len(items)}; re-run with --overwrite")
    return out


def judge_columns(rows: list[dict], items: list[dict], outputs: list[list[str]], s) -> tuple[list[dict], dict]:
    """Per-response judge columns and counts: each response's own scores, or (pairwise) its win-rate score."""
    if not s.judge_pairwise:
        columns = []
        for texts in outputs:  # items are the responses, in order
            scores = [parse_score(text, s.judge_max_score) for text in texts]
            columns.append(
                {
                    "judge_outputs": texts,
                    "judge_scores": scores,
                    "judge_unparsed": sum(x is None for x in scores),
                    "judge_score": mean_score(scores),
                }
            )
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
                columns[g] = {
                    "judge_score": scores[j],
                    "judge_unparsed": missed[j],
                    "judge_comparisons": 2 * (len(where) - 1) * s.judge_samples,
                }
    total = sum(len(texts) for texts in outputs)
    readable = [c["judge_score"] for c in columns if c["judge_score"] is not None]
    counts = {
        "judge_outputs": total,
        "judge_unparsed": unparsed,
        "judge_unparsed_share": round(unparsed / total, 4) if total else None,
        "mean_judge_score": round(sum(readable) / len(readable), 4) if readable else None,
    }
    if s.judge_pairwise:
        counts["judge_pairwise"] = True
    return columns, counts


# ------------------------------------------------------------------------------------------- implicit


def sampler_logps_usable(rows: list[dict], model_path: str) -> bool:
    """The rows' `logprob` is log pi_t(y|x) over the exact sampled tokens when M_t sampled them."""
    return all(
        r.get("logprob") is not None
        and r.get("completion_token_ids") is not None
        and r.get("sampler")
        and Path(r["sampler"]).resolve() == Path(model_path).resolve()
        for r in rows
    )


def forward_logps(model_path: str, rows: list[dict], s, task: Task) -> list[float]:
    from scpo.scoring import SequenceScorer

    t0 = time.time()
    scorer = SequenceScorer(model_path, dtype=s.dtype, batch_size=s.score_batch_size)
    logps = scorer.logps(rows, lambda r: prompt_of(r, task))
    del scorer
    gc.collect()
    print(f"[label] log-probs of {len(rows)} responses under {model_path}: {time.time() - t0:.1f}s")
    return logps


def length_normalised(logps: list[float], rows: list[dict]) -> list[float]:
    return [lp / max(1, int(r.get("num_tokens") or 1)) for lp, r in zip(logps, rows)]


def implicit_rewards(rows: list[dict], s, task: Task, model_path: str, previous: bool = False) -> dict:
    """Per-response columns: policy_logp, reference_logp, implicit_reward, implicit_kind (and, with `previous`,
    the previous iteration's reward of the same responses: previous_reward, previous_kind)."""
    policy = (
        [float(r["logprob"]) for r in rows]
        if sampler_logps_usable(rows, model_path)
        else forward_logps(model_path, rows, s, task)
    )
    reference = forward_logps(resolve_model(s.reference_model), rows, s, task) if s.reference_model else None
    columns = {"policy_logp": policy, "reference_logp": reference or [None] * len(rows)}
    if reference is None:
        columns["implicit_reward"] = length_normalised(policy, rows)
        columns["implicit_kind"] = "length_normalised"
    else:
        columns["implicit_reward"] = [p - q for p, q in zip(policy, reference)]
        columns["implicit_kind"] = "dpo"
    if previous and reference is not None:  # the previous iteration's model M_{t-1} rewards the same responses
        if s.previous_reference_model:
            before = forward_logps(resolve_model(s.previous_reference_model), rows, s, task)
            columns["previous_reward"] = [p - q for p, q in zip(reference, before)]
            columns["previous_kind"] = "dpo"
        else:
            columns["previous_reward"] = length_normalised(reference, rows)
            columns["previous_kind"] = "length_normalised"
    return columns


# ------------------------------------------------------------------------------------------ labeler

SIGNAL_COLUMNS = {"judge": "judge_score", "implicit": "implicit_reward"}


class InternalRewardLabeler(Labeler):
    """Labels by the rewards in `signals`; the pair is max vs min of `primary` (ties dropped)."""

    label_fields = {**SAMPLE_FIELDS, "labeler": str}
    signals: ClassVar[tuple[str, ...]] = ()  # judge and / or implicit
    previous_reward: ClassVar[bool] = False  # cream: the previous iteration's reward too

    @property
    def primary(self) -> str:
        """The reward the pair is picked by."""
        return self.signals[0]

    def label_config(self) -> dict:
        s = self.s
        config = {key: getattr(s, key) for key in label_config_keys()}
        for key, path in (
            ("model", s.model),
            ("reference_model", s.reference_model),
            ("previous_reference_model", s.previous_reference_model),
        ):
            if path:
                resolved = resolve_model(path)
                config[key] = resolved
                config[key + "_weights"] = model_fingerprint(resolved)
        return config

    def label_shard(self, rows: list[dict], files: LabelFiles) -> None:
        judge_outputs(
            judge_items(rows, self.s, self.task),
            self.s,
            resolve_model(self.s.model),
            files.labels,
            file_digest(files.samples),
        )

    def label(self, rows: list[dict], files: LabelFiles) -> tuple[list[dict], dict]:
        s, task = self.s, self.task
        model_path = resolve_model(s.model)
        # The forward passes first: the transformers model is freed before the vLLM engine takes memory.
        implicit = (
            implicit_rewards(rows, s, task, model_path, self.previous_reward) if "implicit" in self.signals else None
        )
        judged = None
        if "judge" in self.signals:
            items = judge_items(rows, s, task)
            outputs = judge_outputs(items, s, model_path, files.labels, file_digest(files.samples))
            judged = judge_columns(rows, items, outputs, s)
        correct = gold_correctness(rows, task)
        out, unscored = [], 0
        for i, row in enumerate(rows):
            labeled = {**row, "labeler": self.name}
            if judged is not None:
                labeled.update(judged[0][i])
            if implicit is not None:
                for key, values in implicit.items():
                    labeled[key] = values if isinstance(values, str) else values[i]
            labeled["reward"] = labeled[SIGNAL_COLUMNS[self.primary]]
            unscored += labeled["reward"] is None
            if correct[i] is not None:
                labeled["correct"] = correct[i]
            out.append(labeled)
        counts = {
            "labeler": self.name,
            "prompts": len(group_by_prompt(rows)),
            "completions": len(rows),
            "unscored_completions": unscored,
        }
        if judged is not None:
            counts.update(judged[1])
        if implicit is not None:
            counts["implicit_kind"] = implicit["implicit_kind"]
            if "previous_kind" in implicit:
                counts["previous_kind"] = implicit["previous_kind"]
        return out, counts

    def pairs_config(self) -> dict:
        return {
            k: getattr(self.s, k)
            for k in (
                "labeler",
                "seed",
                "consistency_metric",
                "scir_rewards",
                "scir_threshold",
                "scir_scales",
                "task",
                "task_options",
            )
        }

    def check(self, prompt_rows: list[dict]) -> None:
        labelers = {r.get("labeler") for r in prompt_rows}
        if labelers != {self.name}:
            raise ScpoError(
                f"prompt {prompt_rows[0]['id']!r}: labels made by {sorted(map(str, labelers))}, not by "
                f"labeler={self.name}; run scpo label with the same labeler"
            )

    def pick_rewards(self, prompt_rows: list[dict]):
        """The pure pick (scpo/reward_pairs.py) over this prompt's rewards."""
        return reward_pick([r.get("reward") for r in prompt_rows], self.s.seed, prompt_rows[0]["id"])

    def pick(self, prompt_rows: list[dict]) -> Choice | str:
        picked = self.pick_rewards(prompt_rows)
        if isinstance(picked, str):
            return picked
        columns = {
            "weight": 1.0,
            "source": self.name,
            "chosen_reward": picked.chosen_reward,
            "rejected_reward": picked.rejected_reward,
            "num_scored": sum(x.get("reward") is not None for x in prompt_rows),
        }
        columns.update(self.pair_columns(picked))
        return Choice(picked.chosen, picked.rejected, columns, picked)

    def pair_columns(self, picked) -> dict:
        """Columns of this labeler's own after the common ones (cream: consistency; scir: p_<signal>)."""
        return {}

    def finish(self, pairs: list[dict], choices: list[Choice], counts: dict) -> list[dict]:
        counts["labeler"] = self.name
        counts["candidates"] = len(pairs)
        pairs = self.keep(pairs, choices, counts)
        if pairs:
            counts["mean_reward_gap"] = round(
                sum(p["chosen_reward"] - p["rejected_reward"] for p in pairs) / len(pairs), 4
            )
        return pairs

    def keep(self, pairs: list[dict], choices: list[Choice], counts: dict) -> list[dict]:
        """The candidate pairs to train on (scir: those every reward agrees on)."""
        return pairs

    def no_pairs_advice(self, counts: dict) -> str:
        return "sample more responses per prompt, raise the temperature, or lower scir_threshold"
