#!/usr/bin/env bash
# Connected digits from the Free Spoken Digit Dataset: real speech that trains on 2 CPU cores in minutes.
# Stages: 1 make digit strings (FSDD from ../shared/data, else downloaded), 2 manifests, 3 train,
#         4 evaluate on the held-out speaker, 5 print the results table.
# Usage: bash recipes/digits/run.sh [--stage N] [--stop-stage M] [hydra overrides for asr train, e.g. optim.epochs=4]
# Environment: FSDD=DIR (recordings folder), SKIP_SETUP=1 (do not run tools/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=1 stop_stage=5
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    *) break ;;
  esac
done
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
start=$(date +%s)
[ "${SKIP_SETUP:-0}" = 1 ] || bash tools/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
data=data/digits run=runs/digits
fsdd=${FSDD:-../shared/data/fsdd/recordings}

if run_stage 1; then
  echo "stage 1: digit strings" >&2
  if [ ! -d "$fsdd" ]; then
    echo "$fsdd not found: downloading FSDD" >&2
    fsdd=$(asr download fsdd --out "$data/download" | tail -n 1)
  fi
  asr synth-digits --fsdd "$fsdd" --out "$data/corpus" --seed 0
fi

if run_stage 2; then
  echo "stage 2: manifests" >&2
  asr prepare librispeech --root "$data/corpus" --subsets digits-train,digits-dev,digits-test --out "$data"
  # The closed vocabulary as a beam-search lexicon ("seven s e v e n |"): only these words can come out.
  for w in zero one two three four five six seven eight nine; do echo "$w $(echo $w | sed 's/./& /g')|"; done \
    > "$data/lexicon.txt"
fi

if run_stage 3; then
  echo "stage 3: train" >&2
  asr train --config-name digits run_dir="$run" "$@"
fi

if run_stage 4; then
  echo "stage 4: evaluate on the held-out speaker (greedy, then beam search restricted to the ten words)" >&2
  asr eval --threads 1 --model "$run/best.pt" --manifest "$data/digits-test.jsonl" --report "$run/test-report.jsonl" \
    | tee "$run/test-results.txt"
  asr eval --threads 1 --model "$run/best.pt" --manifest "$data/digits-test.jsonl" --report "$run/test-report-lexicon.jsonl" \
    --lexicon "$data/lexicon.txt" | tee "$run/test-results-lexicon.txt"
fi

if run_stage 5; then
  python3 - "$run" "$data" "$start" <<'PY'
import json, sys, time
run, data, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
res = dict(line.split() for line in open(f"{run}/test-results.txt"))
lex = dict(line.split() for line in open(f"{run}/test-results-lexicon.txt"))
corpus = f"{data}/corpus/LibriSpeech"
def speakers(split):
    names = sorted({json.loads(l)["speaker"] for l in open(f"{corpus}/{split}/SOURCES.jsonl")})
    tts = [n for n in names if n.startswith("tts-")]
    flite = [n for n in names if n.startswith("flite-")]
    voices = sorted({n.split("-")[1] for n in flite})
    return ", ".join([n for n in names if n not in tts + flite]
                     + ([f"{len(flite)} flite personas ({', '.join(voices)})"] if flite else [])
                     + ([f"{len(tts)} espeak-ng voices"] if tts else []))
def hours(split):
    return sum(json.loads(l)["duration"] for l in open(f"{data}/{split}.jsonl")) / 3600
test = [json.loads(l) for l in open(f"{data}/digits-test.jsonl")]
rows = [("train speakers", speakers("digits-train")), ("training audio", f"{hours('digits-train'):.2f} h"),
        ("test speaker (held out)", speakers("digits-test")),
        ("test utterances", f"{len(test)} ({sum(len(u['text'].split()) for u in test)} digits)"),
        ("test WER / CER (greedy)", f"{res['WER']} % / {res['CER']} %"),
        ("test WER / CER (beam, 10-word lexicon)", f"{lex['WER']} % / {lex['CER']} %"),
        ("wall time (stages run)", f"{(time.time() - start) / 60:.1f} min")]
print("\n| result | value |\n|---|---|")
for k, v in rows:
    print(f"| {k} | {v} |")
PY
fi
