"""`scpo eval`: held-out accuracy of a model: greedy, sampled pass@1, pass@k, maj@k, and vote calibration.

Runs the same sampler as `scpo sample` (vLLM by default) on an eval file with gold answers.
Writes `eval.json` (each metric with its standard error over problems, Somers' D between vote share
and correctness, accuracy per vote-share bin) and `eval_samples.jsonl` (every graded completion).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scpo.errors import ScpoError
from scpo.io import read_rows, write_json, write_rows
from scpo.metrics import calibration, mean_and_stderr, pass_at_k, somers_d
from scpo.sampling import Request, request_seed
from scpo.settings import parse_settings
from scpo.stages.common import iter_file, run_once
from scpo.stages.model import resolve_model
from scpo.stages.sample import SampleSettings, make_sampler, messages_for, model_fingerprint
from scpo.tasks import Task, get_task
from scpo.voting import UNPARSED, vote


@dataclass
class EvalSettings:
    model: str = "embedded"
    task: str = "gsm8k"
    task_options: dict = field(default_factory=dict)
    iter_dir: str | None = None
    eval_file: str | None = None
    eval_output: str | None = None
    eval_k: int = 8
    eval_temperature: float = 0.7
    greedy: bool = True
    max_eval_problems: int | None = None
    top_p: float = 0.9
    top_k: int | None = None
    max_tokens: int = 512
    stop: list[str] = field(default_factory=list)
    tensor_parallel_size: int = 1
    seed: int = 0
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    enforce_eager: bool = False
    vllm_kwargs: dict = field(default_factory=dict)
    backend: str = "vllm"
    iteration: int = 0
    overwrite: bool = False

    def __post_init__(self):
        if self.eval_k < 1:
            raise ScpoError(f"setting eval_k={self.eval_k}: need at least one sample per problem")


def grade_problem(problem: dict, sampled: list[str], greedy: str | None, task: Task) -> tuple[dict, list[dict]]:
    """Per-problem results and per-completion rows (answer, correct, vote share)."""
    gold = task.extract_gold(str(problem["gold"]))
    answers = [task.extract(text) for text in sampled]
    votes = vote(answers, task)
    group_ok = [gold is not None and task.equivalent(g.answer, gold) for g in votes.groups]
    correct = [g != UNPARSED and group_ok[g] for g in votes.group_of]
    k = len(sampled)
    rows = [{"id": problem["id"], "sample_index": i, "completion": text, "answer": answers[i], "correct": correct[i],
             "vote_share": votes.votes_of(i) / k} for i, text in enumerate(sampled)]
    result = {"c": sum(correct), "n": k, "maj": bool(votes.groups) and group_ok[0] and
              (len(votes.groups) == 1 or votes.groups[1].votes < votes.groups[0].votes)}
    if greedy is not None:
        answer = task.extract(greedy)
        result["greedy"] = answer is not None and gold is not None and task.equivalent(answer, gold)
        rows.append({"id": problem["id"], "sample_index": -1, "completion": greedy, "answer": answer,
                     "correct": result["greedy"], "vote_share": None})
    return result, rows


def summarize(results: list[dict], rows: list[dict], k: int) -> dict:
    def stat(values):
        mean, se = mean_and_stderr([float(v) for v in values])
        return {"mean": round(mean, 4), "stderr": round(se, 4)}

    metrics = {"problems": len(results), "k": k,
               "pass@1": stat(pass_at_k(r["n"], r["c"], 1) for r in results),
               f"pass@{k}": stat(pass_at_k(r["n"], r["c"], k) for r in results),
               f"maj@{k}": stat(r["maj"] for r in results)}
    if results and "greedy" in results[0]:
        metrics["greedy"] = stat(r["greedy"] for r in results)
    sampled = [r for r in rows if r["vote_share"] is not None]
    shares, correct = [r["vote_share"] for r in sampled], [r["correct"] for r in sampled]
    d = somers_d(shares, correct)
    metrics["somers_d"] = None if d is None else round(d, 4)
    metrics["calibration"] = calibration(shares, correct)
    return metrics


def run(s: EvalSettings) -> dict:
    eval_file = iter_file(s.iter_dir, s.eval_file, "eval_problems.jsonl")
    output = iter_file(s.iter_dir, s.eval_output, "eval.json")
    problems = read_rows(eval_file, required={"id": (str, int), "prompt": (str, list), "gold": (str, int, float)})
    if s.max_eval_problems:
        problems = problems[: s.max_eval_problems]
    model_path = resolve_model(s.model)
    task = get_task(s.task, **s.task_options)
    config = {k: v for k, v in vars(s).items() if k not in ("iter_dir", "eval_output", "overwrite", "iteration")}
    config.update(model=model_path, model_weights=model_fingerprint(model_path))

    def body() -> dict:
        sample_settings = SampleSettings(model=model_path, task=s.task, task_options=s.task_options, k=s.eval_k,
                                         temperature=s.eval_temperature, top_p=s.top_p, top_k=s.top_k,
                                         max_tokens=s.max_tokens, stop=s.stop,
                                         tensor_parallel_size=s.tensor_parallel_size,
                                         seed=s.seed, dtype=s.dtype, max_model_len=s.max_model_len,
                                         gpu_memory_utilization=s.gpu_memory_utilization,
                                         enforce_eager=s.enforce_eager, vllm_kwargs=s.vllm_kwargs, backend=s.backend)
        sampler = make_sampler(sample_settings, model_path)
        tok = sampler.tokenizer()
        requests, kept = [], []
        for p in problems:
            ids = tok.apply_chat_template(messages_for(p, task), add_generation_prompt=True, tokenize=True)
            ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
            if len(ids) >= sampler.max_model_len:
                print(f"[eval] warning: problem {p['id']!r} is longer than max_model_len; not evaluated")
                continue
            kept.append(p)
            key = f"eval:{p['id']}"
            requests.append(Request(key, ids, s.eval_k, s.eval_temperature, request_seed(s.seed, key)))
            if s.greedy:
                requests.append(Request(key + ":greedy", ids, 1, 0.0, request_seed(s.seed, key + ":greedy")))
        outputs = sampler.generate(requests)
        step = 2 if s.greedy else 1
        results, rows = [], []
        for j, p in enumerate(kept):
            sampled = [g.text for g in outputs[step * j]]
            greedy = outputs[step * j + 1][0].text if s.greedy else None
            result, graded = grade_problem(p, sampled, greedy, task)
            results.append(result)
            rows.extend(graded)
        if not results:
            raise ScpoError(f"{eval_file}: no problem fits max_model_len; nothing was evaluated")
        metrics = summarize(results, rows, s.eval_k)
        metrics["skipped_too_long"] = len(problems) - len(kept)
        write_rows(Path(output).with_name("eval_samples.jsonl"), rows)
        write_json(output, {**metrics, "model": model_path, "eval_file": eval_file})
        print(f"[eval] {output}: " + ", ".join(
            f"{k} {v['mean']:.3f}±{v['stderr']:.3f}" for k, v in metrics.items() if isinstance(v, dict)))
        return {k: v for k, v in metrics.items() if k != "calibration"}

    return run_once("eval", output, config, [eval_file], body, s.overwrite)


def main(argv: list[str]) -> dict:
    return run(parse_settings(EvalSettings, argv))
