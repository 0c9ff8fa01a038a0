#!/usr/bin/env bash
# Issue 29's diagnosis run: iteration 1 of the GSM8K ScPO run again, with tau 0.5 instead of 0.7 (77 pairs instead of
# 20) and 2 epochs instead of 3 (CPU time; the original kept epoch 1 of 3), from M_1 and M_1's own samples (reused: same model, same problems), then M_2' on the held-out set. Resumable:
# every stage skips what its manifest says is done.
set -euo pipefail
cd /work/frozen
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/frozen HF_HUB_OFFLINE=1
C=recipes/qwen2.5_coder_0.5b/gsm8k/config_scpo.yaml
B=/work/runs/qwen05b_gsm8k_scpo
R=/work/runs/qwen05b_gsm8k_scpo_iter1_tau05
common=(--config "$C" --output_root /work/runs --run_name qwen05b_gsm8k_scpo_iter1_tau05)
scpo pairs "${common[@]}" --iteration 1 --iter_dir $R/iter_1 --labels_file $B/iter_1/labels.jsonl --tau 0.5
scpo train "${common[@]}" --iteration 1 --iter_dir $R/iter_1 --model $B/iter_0/model --output_dir $R/iter_1/model --num_train_epochs 2
scpo eval "${common[@]}" --iteration 2 --iter_dir $R/iter_2 --model $R/iter_1/model
echo "done"
