#!/usr/bin/env bash
# Waits until the GSM8K comparison has finished scpo_unweighted, stops it (irpo_gold has just begun), measures the 1.5B alone,
# then restarts the comparison (it resumes: finished methods are kept).
S=/work/runs/compare_qwen05b_gsm8k/compare.json
until [ -f $S ] && python3 -c "import json,sys; sys.exit(0 if 'scpo_unweighted' in json.load(open('$S')).get('methods',{}) else 1)"; do sleep 30; done
pkill -f "scpo compare"; sleep 2; pkill -f "scpo (label|pairs|train)"; pkill -f "scpo.cli train"; sleep 10
bash /work/runs/lora15/measure.sh > /work/runs/lora15/measure.log 2>&1
cd /work/frozen && PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/frozen HF_HUB_OFFLINE=1 nohup scpo compare \
  --config recipes/qwen2.5_coder_0.5b/gsm8k/compare.yaml --output_root /work/runs >> /work/runs/compare_gsm8k.log 2>&1 &
