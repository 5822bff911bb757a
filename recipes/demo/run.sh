#!/usr/bin/env bash
# The main job on the embedded default corpus (no download): set up, synthesize the corpus with
# espeak-ng, prepare manifests, train, evaluate on the test split (greedy, then beam search with a 3-gram LM
# of the training text, its weights tuned on the dev split), transcribe a file, print results.
# Usage: [HOURS=H] [DATA=data/demo] [RUN=runs/demo] [JOB_MIN=14] bash recipes/demo/run.sh [hydra overrides for
# asr train]; HOURS: training speech to synthesize (default: asr synth-corpus's, 6 h). JOB_MIN: the whole job's
# wall time, minutes: training gets what set-up and synthesis left of it, less a reserve for what comes after
# (optim.time_budget_min); JOB_MIN=0 trains optim.epochs epochs instead, e.g. JOB_MIN=0 ... optim.epochs=10
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
job_min=${JOB_MIN:-14}   # checked before any work
[[ "$job_min" =~ ^[0-9]+([.][0-9]+)?$ ]] \
  || { echo "run.sh: JOB_MIN=$job_min: expected the job's minutes, e.g. JOB_MIN=14 (0: no time budget)" >&2; exit 1; }
bash tools/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
data=${DATA:-data/demo} run=${RUN:-runs/demo}   # corpus and manifests; run directory

asr synth-corpus --out "$data/corpus" ${HOURS:+--hours "$HOURS"} --seed 0
asr prepare librispeech --root "$data/corpus" --subsets train-synth,dev-synth,test-synth --out "$data"
# Where the CPU computes bf16 natively (AVX512-BF16 or AMX), bf16 autocast makes this model's training steps about
# 1.3x faster (README, "Results of the main job"; recipes/demo/README.md); elsewhere bf16 would be emulated, slower
# than fp32. Overrides given to this script come after, so they win.
fast=()
if python3 -c 'import sys; from asr.precision import cpu_has_native_bf16; sys.exit(not cpu_has_native_bf16())'; then
  fast=(precision=bf16)
fi
# The time left for training: JOB_MIN less what has run so far and a reserve of 90 s (measured here: about 30 s of
# start-up and feature caching before the training loop, 35 s of evaluation, LM and transcription after it, and a
# margin for a slower machine). The learning rate decays over that budget, so a faster machine trains more.
# Training gets at least half of JOB_MIN, even when set-up took longer than usual (packages downloaded rather than
# taken from pip's cache): the job then runs past JOB_MIN, and says so.
budget=()
if [[ ! "$job_min" =~ ^0+([.]0*)?$ ]]; then  # JOB_MIN=0: optim.epochs epochs, no budget
  read -r left_min budget_min < <(python3 -c "j = float('$job_min')
left = round((j * 60 - ($(date +%s) - $start) - 90) / 60, 2)
print(left, max(left, round(j / 2, 2)))")
  if [ "$budget_min" != "$left_min" ]; then
    echo "run.sh: set-up and synthesis took $(( $(date +%s) - start )) s, leaving ${left_min} min of" \
         "JOB_MIN=$job_min for training; training ${budget_min} min (half of it) anyway: the job will take longer" >&2
  else
    echo "run.sh: ${budget_min} min of the ${job_min} left for training (optim.time_budget_min)" >&2
  fi
  budget=(optim.epochs=30 optim.time_budget_min="$budget_min")
fi
asr train run_dir="$run" data.train_manifest="$data/train-synth.jsonl" data.dev_manifest="$data/dev-synth.jsonl" \
  "${fast[@]}" "${budget[@]}" "$@"
asr eval --model "$run/best.pt" --manifest "$data/test-synth.jsonl" --report "$run/test-report.jsonl" \
  | tee "$run/test-results.txt"
asr lm build --text "$data"/corpus/LibriSpeech/train-synth/*/*/*.trans.txt --order 3 --out "$data/lm/3gram.arpa"
python3 tools/tune_lm.py --model "$run/best.pt" --manifest "$data/dev-synth.jsonl" --lm "$data/lm/3gram.arpa" \
  --out "$run/beam_tuned.yaml" 2> "$run/tune_lm.log" || { tail -n 5 "$run/tune_lm.log" >&2; exit 1; }
asr eval --model "$run/best.pt" --manifest "$data/test-synth.jsonl" --decoder-config "$run/beam_tuned.yaml" \
  --report "$run/test-report-beam.jsonl" | tee "$run/test-results-beam.txt"
sample=$(head -n 1 "$data/test-synth.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["audio"])')
asr transcribe --model "$run/best.pt" "$sample" | tee "$run/transcribe-example.txt"
python3 - "$run" "$data" "$start" <<'PY'
import json, sys, time
import yaml
run, data, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
res = dict(line.split() for line in open(f"{run}/test-results.txt"))
beam = dict(line.split() for line in open(f"{run}/test-results-beam.txt"))
tuned = yaml.safe_load(open(f"{run}/beam_tuned.yaml"))
test = [json.loads(l) for l in open(f"{data}/test-synth.jsonl")]
words = {w for u in test for w in u["text"].split()}
train_h = sum(json.loads(l)["duration"] for l in open(f"{data}/train-synth.jsonl")) / 3600
ref = test[0]["text"].lower()
hyp = open(f"{run}/transcribe-example.txt").read().split("\t", 1)[1].strip()
rows = [("training audio", f"{train_h:.2f} h"), ("test utterances", len(test)),
        ("test distinct words", len(words)), ("test WER (greedy)", f"{res['WER']} %"),
        ("test CER (greedy)", f"{res['CER']} %"),
        ("test WER / CER (beam + 3-gram LM)", f"{beam['WER']} % / {beam['CER']} %"),
        ("LM weight / word score (tuned on dev)", f"{tuned['lm_weight']} / {tuned['word_score']}"),
        ("wall time", f"{(time.time() - start) / 60:.1f} min"),
        ("example reference", ref), ("example hypothesis", hyp)]
print("\n| result | value |\n|---|---|")
for k, v in rows:
    print(f"| {k} | {v} |")
PY
