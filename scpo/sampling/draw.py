"""Drawing a shard's samples: k per prompt (or adaptively, in rounds), ScPO's extra samples, and their rows.

Every prompt's request carries its own seed, so the text does not depend on how prompts were
batched, sharded or resumed. Sample rows: id, prompt, messages, gold (if any), sample_index,
completion, num_tokens, finish_reason ("stop" | "length"), logprob (sum of the sampled tokens' raw
log-probs: the sampler's log pi(y|x) at temperature 1), temperature, resampled (extra samples drawn
at a higher temperature for prompts whose k samples all agree; they can be rejected, they do not
vote), and with adaptive sampling num_drawn.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from tqdm import tqdm

from scpo.adaptive import leader, same_majority, should_stop
from scpo.core.rows import prompt_of
from scpo.sampling import Request, prompt_ids, request_seed
from scpo.tasks import Task
from scpo.voting import UNPARSED, vote


def sample_shard(
    problems: list[dict], sampler, task: Task, s, sampler_id: str | None = None
) -> tuple[list[dict], dict]:
    """Samples one shard; returns its rows and counts. Prompts too long for the model are skipped and counted.

    `s` holds the sampling settings (k, temperature, seed, resample_n, adaptive, ...). `sampler_id` (the
    model folder) is written into every row: training uses the rows' log-probs as its reference only
    when it trains that very model.
    """
    tok = sampler.tokenizer()
    requests, kept = [], []
    too_long = 0
    for p in problems:
        messages = prompt_of(p, task)
        ids = prompt_ids(tok, messages)
        if len(ids) >= sampler.max_model_len:
            too_long += 1
            print(
                f"[sample] warning: problem {p['id']!r} has {len(ids)} prompt tokens >= max_model_len "
                f"{sampler.max_model_len}; skipped",
                file=sys.stderr,
            )
            continue
        kept.append((p, messages))
        requests.append(
            Request(
                key=str(p["id"]),
                prompt_token_ids=ids,
                n=s.k,
                temperature=s.temperature,
                seed=request_seed(s.seed, str(p["id"])),
            )
        )
    adaptive = s.adaptive != "none"
    audit: dict = {}
    if adaptive:
        outputs = draw_adaptively(sampler, requests, task, s)
        if s.adaptive_audit:
            audit = audit_adaptive(sampler, requests, outputs, task, s)
    else:
        outputs = sampler.generate(requests) if requests else []
    rows: list[dict] = []
    resample_for: list[int] = []
    for j, ((p, messages), gens) in enumerate(zip(kept, outputs)):
        new = sample_rows(
            p, messages, gens, s.temperature, resampled=False, start=0, tokens=s.save_token_ids, sampler_id=sampler_id
        )
        if adaptive:  # the labeler takes this as the prompt's k
            for row in new:
                row["num_drawn"] = len(gens)
        rows.extend(new)
        answers = {None if (a := _answer(g, task)) is None else task.answer_key(a) for g in gens}
        if s.resample_n and len(answers) == 1 and None not in answers:
            resample_for.append(j)
    if resample_for:  # ScPO: unanimous prompts get hotter samples so a rejected response can be found
        extra = [
            Request(
                key=f"{requests[j].key}:resample",
                prompt_token_ids=requests[j].prompt_token_ids,
                n=s.resample_n,
                temperature=s.resample_temperature,
                seed=request_seed(s.seed, f"{requests[j].key}:resample"),
            )
            for j in resample_for
        ]
        extra_out = sampler.generate(extra)
        by_id = {}
        for j, gens in zip(resample_for, extra_out):
            p, messages = kept[j]
            by_id[str(p["id"])] = sample_rows(
                p,
                messages,
                gens,
                s.resample_temperature,
                resampled=True,
                start=s.k,
                tokens=s.save_token_ids,
                sampler_id=sampler_id,
            )
        rows = _interleave(rows, by_id)
    counts = {
        "problems": len(problems),
        "prompts_sampled": len(kept),
        "skipped_too_long": too_long,
        "completions": len(rows),
        "resampled_prompts": len(resample_for),
        "truncated": sum(r["finish_reason"] == "length" for r in rows),
        "output_tokens": sum(r["num_tokens"] for r in rows),
        **audit,
    }
    if adaptive:
        counts["samples_drawn"] = sum(len(g) for g in outputs)
        counts["stopped_early"] = sum(len(g) < s.k for g in outputs)
    return rows, counts


def _answer(g, task: Task) -> str | None:
    return task.vote_answer(g.text, g.finish_reason == "length")


def draw_adaptively(sampler, requests: list[Request], task: Task, s) -> list[list]:
    """Rounds of samples per prompt until the stopping rule says its vote is settled, or k are drawn.

    A round that already holds d samples asks for n more with seed + d: vLLM seeds the i-th of a
    request's n samples with seed + i, so the drawn samples are the first ones of the fixed-k run.
    """
    gens: list[list] = [[] for _ in requests]
    active = list(range(len(requests)))
    with tqdm(total=len(requests), desc="adaptive: prompts settled", unit="prompt") as bar:
        while active:
            batch = [
                replace(
                    requests[j],
                    n=min(s.adaptive_round if gens[j] else s.adaptive_min_samples, s.k - len(gens[j])),
                    seed=requests[j].seed + len(gens[j]),
                )
                for j in active
            ]
            drawn_now = {}
            for j, out in zip(active, sampler.generate(batch)):
                gens[j].extend(out)
                drawn_now[j] = len(out)
            still = [j for j in active if not settled(gens[j], drawn_now[j], task, s)]
            bar.update(len(active) - len(still))
            active = still
    return gens


def settled(gens: list, last_round: int, task: Task, s) -> bool:
    """The stopping rule on one prompt's samples so far (counts for the count rules, the answers in order for ESC)."""
    votes = vote([_answer(g, task) for g in gens], task)
    groups = [None if g == UNPARSED else g for g in votes.group_of]  # equivalent answers share a group
    return should_stop(
        [g.votes for g in votes.groups],
        len(gens),
        s.k,
        s.adaptive,
        s.adaptive_confidence,
        answers=groups,
        last_round=last_round,
    )


def audit_adaptive(sampler, requests: list[Request], gens: list[list], task: Task, s) -> dict:
    """Draws the rest of k for a share of the prompts (by id hash) and counts majorities that would change."""
    chosen = [
        j for j, r in enumerate(requests) if request_seed(s.seed, f"{r.key}:audit") / (2**31 - 1) < s.adaptive_audit
    ]
    short = [j for j in chosen if len(gens[j]) < s.k]
    rest = (
        sampler.generate(
            [replace(requests[j], n=s.k - len(gens[j]), seed=requests[j].seed + len(gens[j])) for j in short]
        )
        if short
        else []
    )
    changed = 0
    for j, extra in zip(short, rest):
        drawn = leader(vote([_answer(g, task) for g in gens[j]], task))
        full = leader(vote([_answer(g, task) for g in gens[j] + extra], task))
        changed += not same_majority(drawn, full, task)
    return {
        "audit_prompts": len(chosen),
        "audit_majority_changed": changed,
        "audit_extra_tokens": sum(g.num_tokens for out in rest for g in out),
    }


def sample_rows(
    problem: dict,
    messages: list[dict],
    gens,
    temperature: float,
    resampled: bool,
    start: int,
    tokens: bool = False,
    sampler_id: str | None = None,
) -> list[dict]:
    base = {"id": problem["id"], "prompt": problem["prompt"], "messages": messages}
    if sampler_id:
        base["sampler"] = sampler_id
    if problem.get("gold") is not None:
        base["gold"] = problem["gold"]
    if problem.get("solution") is not None:  # a gold rationale (IRPO's chosen response when no sample is correct)
        base["solution"] = problem["solution"]
    if problem.get("origin"):  # "generated": written by the model (scpo generate-problems)
        base["origin"] = problem["origin"]
    rows = []
    for i, g in enumerate(gens):
        row = {
            **base,
            "sample_index": start + i,
            "completion": g.text,
            "num_tokens": g.num_tokens,
            "finish_reason": g.finish_reason,
            "logprob": g.logprob,
            "temperature": temperature,
            "resampled": resampled,
        }
        if tokens:
            row["completion_token_ids"] = g.token_ids
            row["token_logprobs"] = g.token_logprobs
        rows.append(row)
    return rows


def _interleave(rows: list[dict], extra: dict[str, list[dict]]) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        out.append(row)
        last_of_prompt = i + 1 == len(rows) or str(rows[i + 1]["id"]) != str(row["id"])
        if last_of_prompt:
            out.extend(extra.get(str(row["id"]), []))
    return out
