#!/usr/bin/env bash
# Submits a whole run to Slurm as a chain of jobs joined by --dependency=afterok: eval M_0, then per
# iteration a sampling job array -> merge + label + pairs -> training (srun + accelerate, ZeRO-3 across
# nodes) -> eval, and the report. Jobs are --requeue-able and skip finished stages (manifests), so after a
# failure the same command resumes the run. --dry_run prints the sbatch commands and scripts instead.
#
#   bash slurm/iterate.sh recipe.yaml [--partition gpu --account me --nodes 2 ...] [--dry_run]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -z "${VIRTUAL_ENV:-}" && -f .venv/bin/activate ]]; then
  # shellcheck source=/dev/null
  source .venv/bin/activate
fi
export HF_HUB_OFFLINE=1

recipe="recipes/cpu_demo.yaml"
if [[ $# -gt 0 && "$1" != --* ]]; then
  recipe="$1"
  shift
fi
exec python -m scpo.cli slurm submit --config "$recipe" "$@"
