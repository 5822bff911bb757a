#!/usr/bin/env bash
# Build KenLM's lmplz (the modified Kneser-Ney estimator) and build_binary into .venv/bin/.
#
# Optional: `asr lm build` falls back to a pure-Python estimator (asr/lm.py) when lmplz is absent.
# Idempotent: does nothing when both programs are already there and run.
# Sources: the kenlm sdist from PyPI (pinned version and sha256); build dependencies: Debian packages.
# Takes about 2 minutes on one core (JOBS=N to change the parallelism; default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."

KENLM_VERSION=0.3.0
KENLM_SHA256=c4628bb9fb63c8a6f9240035b8b037385cfc404cb72e933cf48878291edac1e8
BIN=.venv/bin
WORK=.venv/build-kenlm  # sources and objects; safe to delete after a successful build
JOBS=${JOBS:-$(nproc)}

runs() {  # lmplz --help exits 1: check that it prints its usage instead
  case "$("$BIN/lmplz" --help 2>&1 || true)" in *Kneser-Ney*) return 0 ;; *) return 1 ;; esac
}
if runs && [ -x "$BIN/build_binary" ]; then
  echo "build_kenlm: $BIN/lmplz and $BIN/build_binary already built" >&2
  exit 0
fi
[ -x .venv/bin/python ] || { echo "build_kenlm: no .venv; run tools/setup.sh first" >&2; exit 1; }

# Build dependencies (Debian): a compiler, cmake, Boost and the compression libraries KenLM reads.
PKGS="build-essential cmake libboost-program-options-dev libboost-system-dev libboost-thread-dev
      libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev"
missing=$(for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "build_kenlm: installing Debian packages:" $missing >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

mkdir -p "$WORK"
SDIST="$WORK/kenlm-$KENLM_VERSION.tar.gz"
if [ ! -f "$SDIST" ]; then
  # --no-build-isolation: only fetch the sdist; pip must not build cmake from source to read its metadata.
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --no-build-isolation \
    --no-binary kenlm "kenlm==$KENLM_VERSION" -d "$WORK"
fi
echo "$KENLM_SHA256  $SDIST" | sha256sum -c --quiet - \
  || { echo "build_kenlm: $SDIST does not have the pinned sha256; delete it and retry" >&2; exit 1; }

SRC="$WORK/kenlm-$KENLM_VERSION"
[ -f "$SRC/lm/builder/lmplz_main.cc" ] || tar xzf "$SDIST" -C "$WORK"

# KENLM_MAX_ORDER=6: models up to 6-grams; higher orders need a rebuild.
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 \
  -DCOMPILE_TESTS=OFF -DENABLE_PYTHON=OFF -DENABLE_INTERPOLATE=OFF >"$WORK/cmake.log" 2>&1 \
  || { echo "build_kenlm: cmake failed; see $WORK/cmake.log" >&2; exit 1; }
cmake --build "$WORK/build" --target lmplz build_binary -j "$JOBS" >"$WORK/make.log" 2>&1 \
  || { echo "build_kenlm: compilation failed; see $WORK/make.log" >&2; exit 1; }

install -m 755 "$WORK/build/bin/lmplz" "$WORK/build/bin/build_binary" "$BIN/"
runs || { echo "build_kenlm: $BIN/lmplz does not run" >&2; exit 1; }
echo "build_kenlm: installed $BIN/lmplz and $BIN/build_binary (KenLM $KENLM_VERSION)" >&2
