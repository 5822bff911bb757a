#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine: espeak-ng and flite (apt), a virtual environment
# in .venv with the pinned packages (constraints.txt), and this package in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

# espeak-ng speaks the embedded corpus; flite (voices from recordings of four real people) adds speakers
# to the digits recipe's training set
missing=""
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
command -v flite >/dev/null 2>&1 || missing="$missing flite"
if [ -n "$missing" ]; then
  echo "setup: installing$missing (Debian packages)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Reinstall only when the pins or the package metadata change.
stamp=".venv/.installed-$(cat constraints.txt pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv (torch is large: a minute or two)" >&2
  # torch's CUDA build and its nvidia-* libraries take about 6.2 GB in .venv (measured); say so before pip fails
  free_gb() { df -Pk .venv | awk 'NR==2 {printf "%.1f", $4 / 1048576}'; }
  if awk -v f="$(free_gb)" 'BEGIN {exit !(f < 7)}'; then
    echo "setup: warning: only $(free_gb) GB free on the disk of $(pwd)/.venv; the packages need about 6.5 GB." \
         "If pip fails with 'No space left on device', free space there (or clone elsewhere) and run this again" >&2
  fi
  # --no-compile: pip would byte-compile all of torch's files (35 s of 114 measured on 2 cores); the few asr
  # imports are compiled below
  .venv/bin/pip install -q --no-compile --disable-pip-version-check -c constraints.txt -e ".[dev,beam]" 2>&1 \
    | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import torch, torchaudio, soundfile, hydra, jiwer" \
    || { echo "setup: the Python packages did not install (disk of .venv: $(free_gb) GB free, about 6.5 GB needed); see the pip output above" >&2; exit 1; }
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# Byte-compile the modules asr imports, once per package set: where PYTHONDONTWRITEBYTECODE is set, every process
# would compile them again (tools/precompile.py)
compiled=".venv/.compiled-${stamp##*-}"
if [ ! -f "$compiled" ]; then
  .venv/bin/python tools/precompile.py
  rm -f .venv/.compiled-*
  touch "$compiled"
fi
