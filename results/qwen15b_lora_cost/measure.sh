#!/usr/bin/env bash
# The 1.5B's cost per GSM8K iteration with LoRA (issue 29): its vLLM sampling rate and its LoRA DPO step, each
# alone on the box. Run between compare methods by /work/runs/lora15/between.sh.
set -euo pipefail
cd /work/frozen
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/frozen HF_HUB_OFFLINE=1
R=/work/runs/lora15
C=recipes/qwen2.5_coder_0.5b/gsm8k/config_scpo.yaml
date
scpo sample --config $C --model qwen2.5-coder-1.5b-instruct --iteration 0 --iter_dir $R/iter_0 \
  --max_problems 16 --num_shards 1
date
for steps in 1 3; do  # the difference of the two runs is two optimizer steps (8 pairs each), without load and reference pass
  scpo train --config $C --model qwen2.5-coder-1.5b-instruct --iteration 0 --iter_dir $R/iter_0 \
    --use_peft true --pairs_file $R/pairs24.jsonl --output_dir $R/model_${steps}steps \
    --select_checkpoint none --max_steps $steps --report_to none
  date
done
