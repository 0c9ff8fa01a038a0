#!/usr/bin/env bash
# The test command: installs what it needs once (venv, packages, embedded model), then runs pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m "not slow"`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/recipes/install.sh"
cd "$root"
export HF_HUB_OFFLINE=1  # tests build their models locally; a hub call is a bug
exec "$root/.venv/bin/python" -m pytest tests "$@"
