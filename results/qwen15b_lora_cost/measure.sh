#!/usr/bin/env bash
# The 1.5B's cost per GSM8K iteration with LoRA (issue 29): its vLLM sampling rate and its LoRA DPO step, each
# alone on the box (docs/results.md#the-15b-with-lora-cost-per-iteration; the 24 pairs are the first of the 0.5B
# run's iteration 0). Usage: bash results/qwen15b_lora_cost/measure.sh [work folder] [pairs file]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH=$PWD/.venv/bin:$PATH HF_HUB_OFFLINE=1
R=${1:-/work/runs/lora15}
PAIRS=${2:-$R/pairs24.jsonl}
mkdir -p "$R"
[ -f "$PAIRS" ] || head -24 /work/runs/qwen05b_gsm8k_scpo/iter_0/pairs.jsonl > "$PAIRS"
C=recipes/qwen2.5_coder_0.5b/gsm8k/config_scpo.yaml
date
scpo sample --config $C --model qwen2.5-coder-1.5b-instruct --iteration 0 --iter_dir "$R/iter_0" \
  --max_problems 16 --num_shards 1
date
for steps in 1 3; do  # 1 and 3 optimizer steps of 8 pairs; docs use the 3-step run's time after its reference pass
  scpo train --config $C --model qwen2.5-coder-1.5b-instruct --iteration 0 --iter_dir "$R/iter_0" \
    --use_peft true --pairs_file "$PAIRS" --output_dir "$R/model_${steps}steps" \
    --select_checkpoint none --max_steps $steps --report_to none
  date
done
