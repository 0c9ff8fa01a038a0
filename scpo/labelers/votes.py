"""`labeler: votes` (the default): self-consistency votes and ScPO pairs (Prasad et al. 2024, arXiv 2411.04109).

Label: each completion's final answer is extracted (`Task.vote_answer`; a completion cut off by the
length limit has none unless the task says such completions vote), equivalent answers are grouped
and V(y) counts the k voting samples that agree with y (scpo/voting.py). Labels rows add answer
(None when none could be extracted), answer_group (-1: no answer), votes, k, num_answers,
top_share and, where the prompt has a gold answer, correct (reporting only in unsupervised mode).

Pairs (scpo/pairs.py): chosen from the most-voted answer group, rejected from the least-voted one,
kept when V(chosen) >= tau, weight w = (V+ - V-) / k; semi-supervised and supervised modes add
(correct, incorrect) pairs with w = 1 where gold exists, mixed at `gold_ratio` when it is set.

`vote_rule: scrl` (SCRL, arXiv 2603.19880; scpo/selective_votes.py): chosen from SCRL's positive answer (a share of
at least scrl_tau_pos that beats the runner-up by more than scrl_tau_marg), rejected from one of its negative answers
(a share below scrl_tau_low and a mean entropy at or above the prompt's; the least-voted of them, scpo's choice, as
ScPO rejects the least-voted answer), w = (V+ - V-) / k as ScPO's; a prompt without both gives no pair. The entropy is
each sample's mean token surprisal from the sampler's log-probs (`selective_votes.surprisal`): the samples file
holds only the sampled tokens' log-probs, not the distributions SCRL's entropy needs.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass

from tqdm import tqdm

from scpo.core.errors import ScpoError
from scpo.core.rows import SAMPLE_FIELDS, group_by_prompt
from scpo.labelers._base import Choice, Labeler, LabelFiles
from scpo.pairs import PairRule, mix_sources, pick
from scpo.selective_votes import ScrlLabels, ScrlLabelSettings, scrl_labels, surprisal
from scpo.tasks import Task
from scpo.voting import UNPARSED, Group, PromptVotes, vote


@dataclass
class VoteSettings(ScrlLabelSettings):
    tau: float = 0.5  # keep a prompt when V(chosen) >= tau: a fraction of k when <= 1, else a vote count
    mode: str = "unsupervised"  # unsupervised | semi_supervised (gold pairs where gold exists) | supervised
    weighting: str = "margin"  # margin: w = (V+ - V-)/k (ScPO); none: w = 1 (the unweighted ablation)
    top_tie: str = "skip"  # two answers share the top vote: skip the prompt, or pick one at random
    gold_ratio: float | None = None  # semi_supervised: share of gold pairs in the mix (the plentiful source is cut)

    def __post_init__(self):
        super().__post_init__()
        PairRule(tau=self.tau, mode=self.mode, weighting=self.weighting, top_tie=self.top_tie)  # its checks, now


def voting_rows(rows: list[dict]) -> list[bool]:
    """Which completions vote: a vote teacher's (rows marked `teacher`, vote_teacher: frozen | ema) when the prompt
    has them, else the model's own k samples (ScPO's extra samples join groups without a vote)."""
    if any(row.get("teacher", False) for row in rows):
        return [bool(row.get("teacher", False)) for row in rows]
    return [not row.get("resampled", False) for row in rows]


def label_prompt(rows: list[dict], task: Task) -> list[dict]:
    """Label one prompt's samples; returns new rows (inputs untouched)."""
    answers = [task.vote_answer(row["completion"], row.get("finish_reason") == "length") for row in rows]
    voting = voting_rows(rows)
    own = [not row.get("resampled", False) and not row.get("teacher", False) for row in rows]
    drawn = next((row.get("num_drawn") for row in rows if not row.get("teacher", False)), None)
    if drawn is not None and sum(own) != drawn:  # adaptive sampling: the prompt's k is what was drawn
        raise ScpoError(
            f"prompt {rows[0]['id']!r}: {sum(own)} voting samples but num_drawn={drawn} (rows lost or duplicated)"
        )
    votes = vote(answers, task, voting)
    gold = next((row["gold"] for row in rows if row.get("gold") is not None), None)
    group_correct = None
    if gold is not None:
        gold_answer = task.extract_gold(gold)
        group_correct = [gold_answer is not None and task.equivalent(g.answer, gold_answer) for g in votes.groups]
    top_share = votes.top_votes / votes.k if votes.k else 0.0
    out = []
    for i, row in enumerate(rows):
        g = votes.group_of[i]
        labeled = dict(row)
        labeled.update(
            answer=answers[i],
            answer_group=g,
            votes=votes.votes_of(i),
            k=votes.k,
            num_answers=votes.num_answers,
            top_share=top_share,
        )
        if group_correct is not None:
            labeled["correct"] = False if g == UNPARSED else group_correct[g]
        out.append(labeled)
    return out


def label_rows(rows: list[dict], task: Task, progress: bool = True) -> tuple[list[dict], dict]:
    by_id = group_by_prompt(rows)
    out: list[dict] = []
    unparsed = all_unparsed = majority_correct = with_gold = 0
    gold_unparsed: list = []
    for prompt_rows in tqdm(by_id.values(), desc="label", unit="prompt", disable=not progress or None):
        labeled = label_prompt(prompt_rows, task)
        out.extend(labeled)
        gold = next((r["gold"] for r in prompt_rows if r.get("gold") is not None), None)
        if gold is not None and task.extract_gold(gold) is None:
            gold_unparsed.append(prompt_rows[0]["id"])
        unparsed += sum(r["answer_group"] == UNPARSED for r in labeled)
        all_unparsed += all(r["answer_group"] == UNPARSED for r in labeled)
        if "correct" in labeled[0]:
            with_gold += 1
            majority_correct += any(r["correct"] and r["answer_group"] == 0 for r in labeled)
    counts = {
        "prompts": len(by_id),
        "completions": len(rows),
        "unparsed_completions": unparsed,
        "prompts_all_unparsed": all_unparsed,
    }
    if with_gold:
        counts["majority_accuracy"] = round(majority_correct / with_gold, 4)
        counts["prompts_with_gold"] = with_gold
    if gold_unparsed:  # their samples all count as wrong: say so instead of reporting a silent 0
        counts["gold_unparsed"] = len(gold_unparsed)
        print(
            f"[label] warning: {len(gold_unparsed)} prompt(s) have a gold answer the task cannot parse "
            f"(first: {gold_unparsed[0]!r}); every sample of theirs counts as wrong",
            file=sys.stderr,
        )
    return out, counts


def votes_from_labels(rows: list[dict]) -> PromptVotes:
    """Rebuilds a prompt's vote groups from its labeled rows (no re-grading)."""
    n_groups = max((r["answer_group"] for r in rows), default=UNPARSED) + 1
    groups = [Group(answer="", key=None) for _ in range(n_groups)]
    unparsed_votes = 0
    voting = voting_rows(rows)
    for i, r in enumerate(rows):
        counts = voting[i]
        if r["answer_group"] == UNPARSED:
            unparsed_votes += counts
            continue
        g = groups[r["answer_group"]]
        g.members.append(i)
        g.votes += counts
        g.answer = g.answer or r["answer"]
    return PromptVotes(
        k=sum(voting),
        groups=groups,
        group_of=[r["answer_group"] for r in rows],
        unparsed_votes=unparsed_votes,
        voting=voting,
    )


def sample_entropies(rows: list[dict]) -> list[float]:
    """Each voting sample's mean token surprisal (vote_rule scrl's entropy, estimated; 0.0 for a row that does not
    vote, which SCRL never reads); a named error for a voting row without log-probs."""
    out = []
    for row, votes in zip(rows, voting_rows(rows)):
        value = surprisal(row) if votes else 0.0
        if value is None or not math.isfinite(value):
            raise ScpoError(
                f"prompt {row['id']!r}, sample_index {row.get('sample_index')}: no finite log-probs "
                f"(token_logprobs, or logprob and num_tokens) for vote_rule=scrl's entropy gate: sample "
                "with `scpo sample` (both backends write them), or use vote_rule: plain"
            )
        out.append(value)
    return out


class Votes(Labeler):
    name = "votes"
    settings = VoteSettings
    takes_teacher_votes = True
    label_fields = {**SAMPLE_FIELDS, "answer_group": int}

    def __init__(self, settings, task: Task):
        super().__init__(settings, task)
        s = settings
        if s.gold_ratio is not None and s.mode != "semi_supervised":
            raise ScpoError(f"setting gold_ratio={s.gold_ratio} needs mode: semi_supervised (now {s.mode!r})")
        if s.vote_rule == "scrl" and s.mode == "supervised":
            raise ScpoError(
                "settings vote_rule=scrl and mode=supervised: supervised pairs come from gold answers "
                "only, so SCRL's vote labels would never be used; set mode unsupervised or semi_supervised"
            )
        self.rule = PairRule(tau=s.tau, mode=s.mode, seed=s.seed, weighting=s.weighting, top_tie=s.top_tie)

    def label_config(self) -> dict:
        return {"task": self.s.task, "task_options": self.s.task_options}

    def label(self, rows: list[dict], files: LabelFiles) -> tuple[list[dict], dict]:
        try:
            if self.s.vote_rule == "scrl":  # before labeling: the pairs stage needs them
                for prompt_rows in group_by_prompt(rows).values():
                    sample_entropies(prompt_rows)
            labeled, counts = label_rows(rows, self.task)
        except ScpoError as e:
            raise ScpoError(f"{files.samples}: {e}") from None
        if counts["prompts_all_unparsed"]:
            print(
                f"[label] {counts['prompts_all_unparsed']} prompt(s) had no parseable answer at all; they give no pair",
                file=sys.stderr,
            )
        return labeled, counts

    def pairs_config(self) -> dict:
        s = self.s
        config = {
            "tau": s.tau,
            "mode": s.mode,
            "seed": s.seed,
            "weighting": s.weighting,
            "top_tie": s.top_tie,
            "gold_ratio": s.gold_ratio,
            "task": s.task,
            "task_options": s.task_options,
        }
        if s.vote_rule != "plain":  # joined later: plain runs keep their manifests
            config.update(
                vote_rule=s.vote_rule,
                scrl_tau_pos=s.scrl_tau_pos,
                scrl_tau_marg=s.scrl_tau_marg,
                scrl_tau_low=s.scrl_tau_low,
            )
        return config

    def pick(self, prompt_rows: list[dict]) -> Choice | str:
        votes = votes_from_labels(prompt_rows)
        # A parquet file has every column in every row: None means "no gold for this prompt".
        correct = [bool(r["correct"]) for r in prompt_rows] if prompt_rows[0].get("correct") is not None else None
        teacher = [bool(r.get("teacher", False)) for r in prompt_rows]
        candidates = [not t for t in teacher] if any(teacher) else None  # a teacher's rows vote, never pair
        extra = [bool(r.get("resampled", False)) for r in prompt_rows]
        scrl: ScrlLabels | None = None
        if self.s.vote_rule == "scrl":
            scrl = scrl_labels(votes, sample_entropies(prompt_rows), self.s.scrl_thresholds())
        result = pick(votes, self.rule, prompt_rows[0]["id"], correct, candidates, extra, scrl)
        if isinstance(result, str):
            return result
        c, r = prompt_rows[result.chosen], prompt_rows[result.rejected]
        return Choice(
            result.chosen,
            result.rejected,
            {
                "weight": result.weight,
                "chosen_votes": result.chosen_votes,
                "rejected_votes": result.rejected_votes,
                "k": votes.k,
                "num_answers": votes.num_answers,
                "top_share": votes.top_votes / votes.k if votes.k else 0.0,
                "chosen_answer": c.get("answer"),
                "rejected_answer": r.get("answer"),
                "source": result.source,
            },
        )

    def finish(self, pairs: list[dict], choices: list[Choice], counts: dict) -> list[dict]:
        ratio = self.s.gold_ratio
        if ratio is not None:
            before = Counter(p["source"] for p in pairs)
            scarce = [src for src, share in (("gold", ratio), ("votes", 1 - ratio)) if share and not before[src]]
            if scarce:
                raise ScpoError(
                    f"setting gold_ratio={ratio}: no {scarce[0]} pairs to mix ({dict(before)}; "
                    f"skipped: {dict(counts['skipped'])})"
                )
            pairs = mix_sources(pairs, ratio, self.rule.seed)
            after = Counter(p["source"] for p in pairs)
            counts["dropped_for_ratio"] = {s: before[s] - after[s] for s in before if before[s] > after[s]}
        sources = Counter(p["source"] for p in pairs)
        if len(sources) > 1:
            counts["pairs_by_source"] = dict(sources)
        return pairs

    def no_pairs_advice(self, counts: dict) -> str:
        """What to change, for each reason prompts gave no pair (most frequent first)."""
        advice = {
            "all_unparsed": "no completion had an answer the task could parse: check the answer format the task asks "
            "for (task_options.instruction) and raise max_tokens (cut-off completions do not vote)",
            "below_tau": f"the top answer had fewer than tau={self.s.tau} of the votes: lower tau or raise k",
            "top_tie": "two answers tied for the most votes: raise k, or set top_tie: random",
            "tie": "every answer had the same votes: raise k or the sampling temperature",
            "unanimous": "all samples agreed, so nothing can be rejected: raise the sampling temperature or set "
            "resample_n (ScPO's extra samples at T=1.2)",
            "teacher_top_unsampled": "the vote teacher's answer was not among the model's own samples: raise k",
            "no_gold": f"mode={self.s.mode} pairs need gold answers and these prompts have none",
            "no_correct": "no sample was correct for the prompts with gold",
            "no_incorrect": "every sample was correct for the prompts with gold",
            "scrl_no_positive": f"vote_rule scrl: the top answer had less than scrl_tau_pos={self.s.scrl_tau_pos} of "
            f"the votes or led the runner-up by at most scrl_tau_marg={self.s.scrl_tau_marg}: "
            "lower them or raise k",
            "scrl_no_negative": f"vote_rule scrl: no other answer had less than scrl_tau_low={self.s.scrl_tau_low} of "
            "the votes with a mean entropy at or above the prompt's: raise k or the temperature",
        }
        skipped = sorted(dict(counts.get("skipped", {})).items(), key=lambda kv: -kv[1])
        return (
            "; ".join(f"{n} prompts: {advice.get(reason, reason)}" for reason, n in skipped)
            or "the labels file has no prompt"
        )
