#!/usr/bin/env bash
# The self-consistency loop: runs the loop plan (scpo/loop/plan.py), one stage process after another.
# For t = 0 .. iterations-1, model M_t (optionally after writing new problems) samples k answers per
# problem, the labeler labels them, pairs are built, and M_{t+1} is trained with M_t as the reference;
# every model is evaluated on held-out problems. Each stage skips what its manifest says is done, so a
# killed run started again resumes where it stopped.
#
#   bash recipes/iterate.sh [recipe.yaml] [--setting value ...] [--dry_run]     (default: the CPU demo)
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
plan="$(scpo plan "${args[@]}")"  # one shell-quoted `scpo <stage> ...` command per line
if [[ "$(scpo setting dry_run "${args[@]}")" == True ]]; then
  printf '%s\n' "$plan"
  exit 0
fi
# One run per run directory: flock(2) is released when this shell dies, so a killed run never blocks the next.
run_dir="$(scpo setting output_root "${args[@]}")/$(scpo setting run_name "${args[@]}")"
mkdir -p "$run_dir"
exec {lock}>>"$run_dir/.scpo.lock"
if ! flock -n "$lock"; then
  echo "[loop] $run_dir is in use by $(cat "$run_dir/.scpo.lock" 2> /dev/null || echo another run); wait for it or stop it" >&2
  exit 1
fi
echo "pid $$ (recipes/iterate.sh)" > "$run_dir/.scpo.lock"
export SCPO_RUN_LOCK="$run_dir"  # the stages below run under this lock
mapfile -t steps <<< "$plan"
for step in "${steps[@]}"; do
  echo "[loop] $step" >&2
  status=0
  eval "$step" || status=$?
  if [[ $status -eq 3 ]]; then  # STOP_EXIT (scpo/core/errors.py): the collapse guard stopped the loop; the report is left
    echo "[loop] stopped by the collapse guard; the report follows" >&2
    eval "${steps[-1]}"
    exit 0
  elif [[ $status -ne 0 ]]; then
    exit "$status"
  fi
done
