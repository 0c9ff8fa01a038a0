# shellcheck shell=bash
# Sourced by every slurm/*.sbatch. Activates the
# environment with the `setup` setting (slurm/iterate.sh passes it as SCPO_SETUP) and defines `run`,
# which runs a command, or only prints it when SCPO_PRINT=1: that is how the tests check what a
# 2-node x 8-GPU job would run on a machine that has neither.
export HF_HUB_OFFLINE=1  # models and data are local; never reach for a hub
export SCPO_RUN_LOCK=slurm  # jobs of one submission run in the plan's order (some at once): no run-directory lock
# shellcheck disable=SC2034  # used by the scripts that source this one
read -ra srun_args <<< "${SCPO_SRUN_ARGS:-}"  # e.g. a container: --container-image=... (pyxis)

run() {
  if [[ "${SCPO_PRINT:-0}" == 1 ]]; then
    local line
    line="$(printf '%q ' "$@")"
    echo "${line% }"
  else
    echo "[slurm] job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): $*" >&2
    "$@"
  fi
}

if [[ "${SCPO_PRINT:-0}" != 1 ]]; then
  set +u  # activation scripts may read unset variables
  eval "${SCPO_SETUP-source .venv/bin/activate}"
  set -u
fi
