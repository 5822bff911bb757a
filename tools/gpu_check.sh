#!/usr/bin/env bash
# The GPU checks in one call, for a CUDA machine that has Python, PyTorch, torchaudio, numpy, pytest, tqdm, PyYAML
# and matplotlib but no package index (the lent device machine of this workplace; see tests/test_gpu.py, bench_gpu.py):
#
#   bash tools/gpu_check.sh prepare       # here, with a package index: the wheels that machine lacks and the
#                                         # FSDD recordings the GPU training test reads, into .gpucheck/
#   bash tools/gpu_check.sh run OUT_DIR   # there (carry .gpucheck): install those wheels into /tmp/site, then
#                                         # pytest tests/test_gpu.py and benchmarks/run.py --only
#                                         # loader,gpu,gpu_e2e; logs and JSON results in OUT_DIR
#
# Environment: PYVER (the Python there, default 3.12), FSDD (recordings folder, default
# ../shared/data/fsdd/recordings), TEST_S / BENCH_S (time limits of the two parts, default 150 / 390 seconds:
# together under the device tool's 10 minutes a call; TEST_S=0 skips the tests), BENCH (the benchmarks, default
# loader,gpu,gpu_e2e; none: skip them), SCRIPTS (one-off measurements run last, each
# `benchmarks/NAME.py --out OUT_DIR`, e.g. "gpu_rnn_ab gpu_profile"; default none) and SCRIPT_S (their time limit
# each, default 200 seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.gpucheck
# What the device image lacks of our imports (asr, tests/conftest.py, benchmarks/), pinned by constraints.txt.
packages="hydra-core omegaconf antlr4-python3-runtime soundfile cffi pycparser jiwer RapidFuzz"

pin() { grep -i "^$1==" constraints.txt || { echo "$1 is not pinned in constraints.txt" >&2; exit 2; }; }

case "${1:-}" in
  prepare)
    py=${PYVER:-3.12}
    grep -qxF "/$dir/" .git/info/exclude 2>/dev/null || echo "/$dir/" >> .git/info/exclude
    rm -rf "$dir" && mkdir -p "$dir/whl" "$dir/data/fsdd/recordings"
    for p in $packages; do
      # binary wheels for that Python and platform; a pure-Python sdist (antlr4's) is built into a wheel here
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$dir/whl" "$(pin "$p")" 2>/dev/null \
        || python3 -m pip wheel -q --no-deps -w "$dir/whl" "$(pin "$p")"
    done
    # tests/conftest.py's digit_manifests: recordings 0-5 of the training speakers, 0-3 of george
    fsdd=${FSDD:-../shared/data/fsdd/recordings}
    [ -d "$fsdd" ] || { echo "$fsdd not found: set FSDD=DIR (FSDD's recordings/ folder)" >&2; exit 2; }
    find "$fsdd" -name '*_[0-5].wav' -exec cp {} "$dir/data/fsdd/recordings/" \;
    # benchmarks/bench_loader.py decodes the LibriSpeech sample's FLACs (it synthesizes FLACs without them)
    ls=$(dirname "$fsdd")/../librispeech-sample
    [ -d "$ls" ] && cp -r "$ls" "$dir/data/"
    echo "$dir: $(ls "$dir/whl" | wc -l) wheels, $(ls "$dir/data/fsdd/recordings" | wc -l) recordings," \
      "$(du -sh "$dir" | cut -f1); there: bash tools/gpu_check.sh run \$OUT (carry $dir)"
    ;;
  run)
    out=${2:?usage: bash tools/gpu_check.sh run OUT_DIR}
    mkdir -p "$out"
    [ -d "$dir/whl" ] || { echo "$dir/whl not found: run 'bash tools/gpu_check.sh prepare' first and carry $dir" >&2
                           exit 2; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$dir"/whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" ASR_SHARED_DATA="$PWD/$dir/data" PYTHONUNBUFFERED=1
    { nvidia-smi || true; python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
    } 2>&1 | tee "$out/machine.txt"
    status=0
    if [ "${TEST_S:-150}" != 0 ]; then
      timeout "${TEST_S:-150}" python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py 2>&1 \
        | tee "$out/test_gpu.log" || status=1
    fi
    # the loader benchmark too: per-worker decode + log-mel rates on that machine's CPU, against what the GPU consumes
    if [ "${BENCH:-}" != none ]; then
      timeout "${BENCH_S:-390}" python3 benchmarks/run.py --only "${BENCH:-loader,gpu,gpu_e2e}" --out "$out" 2>&1 \
        | tee "$out/bench_gpu.log" \
        || status=1
    fi
    for script in ${SCRIPTS:-}; do
      timeout "${SCRIPT_S:-200}" python3 "benchmarks/$script.py" --out "$out" 2>&1 | grep -v "USDT\|profiler_st" \
        | tee "$out/$script.log" || status=1
    done
    exit $status
    ;;
  *)
    sed -n 2,13p "$0" >&2
    exit 2
    ;;
esac
