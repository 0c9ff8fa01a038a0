#!/usr/bin/env bash
# Rebuilds train.jsonl, dev.jsonl and eval.jsonl of the GSM8K recipe from openai/grade-school-math (MIT) as
# ../shared/data/gsm8k holds it: ScPO's split of the train set (scpo data --split_preset scpo_gsm8k: 6.7K train /
# 0.8K dev by a hash of the id), then the first 256 train, 128 dev and 400 test problems in file order, without
# the worked solutions (never trained on; gold is kept for reporting).
#   bash recipes/qwen2.5_coder_0.5b/gsm8k/make_data.sh [path/to/gsm8k]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_dir="${1:-$here/../../../../shared/data/gsm8k}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
scpo data --input "$source_dir/train.jsonl" --source gsm8k --split_preset scpo_gsm8k --output_dir "$tmp/split"
scpo data --input "$source_dir/test.jsonl" --source gsm8k --output_dir "$tmp/test"
python - "$tmp" "$here" <<'PY'
import json, sys
tmp, here = sys.argv[1:]
for source, name, n in ((f"{tmp}/split/train.jsonl", "train", 256), (f"{tmp}/split/dev.jsonl", "dev", 128),
                        (f"{tmp}/test/train.jsonl", "eval", 400)):
    rows = [json.loads(line) for line in open(source)][:n]
    with open(f"{here}/{name}.jsonl", "w") as out:
        for row in rows:
            row.pop("solution", None)
            out.write(json.dumps(row) + "\n")
    print(f"{name}.jsonl: {len(rows)} problems")
PY
