"""Held-out similarity to reference answers, per model of a run: what changed from M_0 to M_t without the labeler.

    python benchmarks/reference_similarity.py runs/free_form_cpu_demo [--encoder all-minilm-l6-v2 | --encoder none]

For a task with no answer to grade (`task: free_form`), `scpo eval` keeps every held-out completion
(iter_<t>/eval_samples.jsonl: the greedy one and eval_k samples per problem) and the eval file's `gold` holds each
problem's reference answer. Per model this prints, for the greedy completion and the mean over the samples:
ROUGE-1 and ROUGE-2 F1 against the reference (clipped n-gram counts over lower-cased words; model-free, nothing in
common with the labeler), the encoder's cosine to the reference (the labeler's encoder, but measured against a
reference, not among the model's own samples), and the length in words (DPO often moves it). Differences against
M_0 are paired per problem, with their standard errors over problems.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from scpo.core.io import read_rows
from scpo.metrics import mean_and_stderr

WORD = re.compile(r"\w+")


def rouge_n(candidate: str, reference: str, n: int) -> float:
    """ROUGE-N F1 with clipped counts (Lin 2004) over lower-cased words."""

    def grams(text):
        words = WORD.findall(text.lower())
        return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))

    c, r = grams(candidate), grams(reference)
    overlap = sum((c & r).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(c.values()), overlap / sum(r.values())
    return 2 * precision * recall / (precision + recall)


def per_problem(samples: list[dict], references: dict[str, str], cosine) -> dict[str, dict[str, float]]:
    """problem id -> metric -> value (greedy_* from the greedy completion, the rest the mean over the samples)."""
    by_id: dict[str, list[dict]] = {}
    for row in samples:
        if str(row["id"]) in references:
            by_id.setdefault(str(row["id"]), []).append(row)
    out = {}
    for pid, rows in by_id.items():
        reference = references[pid]
        sims = cosine([r["completion"] for r in rows], reference) if cosine else [None] * len(rows)
        values: dict[str, list[float]] = {}
        for row, sim in zip(rows, sims):
            prefix = "greedy_" if row.get("sample_index") == -1 else ""
            scores = {
                "rouge1": rouge_n(row["completion"], reference, 1),
                "rouge2": rouge_n(row["completion"], reference, 2),
                "words": float(len(WORD.findall(row["completion"]))),
            }
            if sim is not None:
                scores["cosine"] = sim
            for key, value in scores.items():
                values.setdefault(prefix + key, []).append(value)
        out[pid] = {key: sum(v) / len(v) for key, v in values.items()}
    return out


def make_cosine(encoder: str):
    if encoder == "none":
        return None
    from scpo.semantic import SemanticSettings, SoftVoter

    embedder = SoftVoter(SemanticSettings(semantic_model=encoder, semantic_device="cpu")).embedder

    def cosine(texts: list[str], reference: str) -> list[float]:
        vectors = embedder.embed([reference, *texts])
        return (vectors[1:] @ vectors[0]).double().tolist()

    return cosine


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--eval_file", default=None, help="default: the one iter_0/eval.json names")
    parser.add_argument("--encoder", default="all-minilm-l6-v2", help="a sentence encoder, or none")
    args = parser.parse_args(argv)
    run = Path(args.run_dir)
    iterations = sorted(
        (p for p in run.glob("iter_*") if (p / "eval_samples.jsonl").exists()), key=lambda p: int(p.name.split("_")[1])
    )
    if not iterations:
        raise SystemExit(f"{run}: no iter_*/eval_samples.jsonl (run scpo eval first)")
    eval_file = args.eval_file or json.loads((iterations[0] / "eval.json").read_text())["eval_file"]
    references = {str(r["id"]): str(r["gold"]) for r in read_rows(eval_file, required={"id": (str, int), "gold": str})}
    cosine = make_cosine(args.encoder)
    models = {p.name: per_problem(read_rows(str(p / "eval_samples.jsonl")), references, cosine) for p in iterations}
    base_name = iterations[0].name
    base = models[base_name]
    report = {}
    for name, problems in models.items():
        ids = sorted(set(problems) & set(base))
        metrics = sorted({key for values in problems.values() for key in values})
        entry = {}
        for key in metrics:
            mean, se = mean_and_stderr([problems[i][key] for i in ids])
            entry[key] = {"mean": round(mean, 4), "stderr": round(se, 4)}
            if name != base_name:
                diff, dse = mean_and_stderr([problems[i][key] - base[i][key] for i in ids])
                entry[key]["minus_" + base_name] = {"mean": round(diff, 4), "stderr": round(dse, 4)}
        report[name] = {"problems": len(ids), **entry}
        line = ", ".join(
            f"{k} {v['mean']:.3f}±{v['stderr']:.3f}"
            + (
                f" (Δ {v['minus_' + base_name]['mean']:+.3f}±{v['minus_' + base_name]['stderr']:.3f})"
                if "minus_" + base_name in v
                else ""
            )
            for k, v in entry.items()
        )
        print(f"{name} ({len(ids)} problems): {line}")
    return report


if __name__ == "__main__":
    main()
