#!/usr/bin/env bash
# The self-consistency loop. For t = 0 .. iterations-1, model M_t (optionally after writing new
# problems) samples k answers per problem, votes label them, pairs are built, and M_{t+1} is
# trained with M_t as the reference; every model is evaluated on held-out problems. Each stage is
# its own process and skips what its manifest says is done, so a killed run started again resumes
# where it stopped.
#
#   bash recipes/iterate.sh [recipe.yaml] [--setting value ...]     (default: the CPU demo)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/recipes/install.sh"
export PATH="$root/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1  # models and data are local; never reach for a hub
cd "$root"

recipe="recipes/cpu_demo.yaml"
if [[ $# -gt 0 && "$1" != --* ]]; then
  recipe="$1"
  shift
fi
args=(--config "$recipe" "$@")
run_dir="$(scpo setting output_root "${args[@]}")/$(scpo setting run_name "${args[@]}")"
iterations="$(scpo setting iterations "${args[@]}")"
model="$(scpo setting model "${args[@]}")"
reference=""           # M_{t-1}: M_t's DPO reference (none for M_0)
previous_reference=""  # M_{t-2}

scpo eval "${args[@]}" --iteration 0 --iter_dir "$run_dir/iter_0" --model "$model"
for ((t = 0; t < iterations; t++)); do
  step=("${args[@]}" --iteration "$t" --iter_dir "$run_dir/iter_$t")
  scpo generate-problems "${step[@]}" --model "$model"  # only with new_problems > 0
  scpo sample "${step[@]}" --model "$model"
  # labeler: votes (default) | judge | implicit | cream | scir; the internal rewards judge with M_t and use
  # its reference models (the votes labeler ignores them).
  scpo label "${step[@]}" --model "$model" --reference_model "$reference" --previous_reference_model "$previous_reference"
  scpo pairs "${step[@]}"
  scpo train "${step[@]}" --model "$model" --output_dir "$run_dir/iter_$t/model"
  previous_reference="$reference"
  reference="$model"
  model="$run_dir/iter_$t/model"
  scpo eval "${args[@]}" --iteration "$((t + 1))" --iter_dir "$run_dir/iter_$((t + 1))" --model "$model"
done
scpo report "$run_dir"
