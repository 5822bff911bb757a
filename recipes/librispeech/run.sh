#!/usr/bin/env bash
# LibriSpeech (OpenSLR 12) with a BiLSTM-CTC. Every stage skips work that is already complete, so the same
# command resumes after an interruption (training itself resumes from RUN/last.pt).
# Stages: 1 download   2 manifests   3 feature statistics (+ BPE model)   4 train (+ checkpoint averaging)
#         5 evaluate on each dev/test subset (greedy; beam too with --lm)   6 results table RUN/RESULTS.md
# Usage: bash recipes/librispeech/run.sh [options] [hydra overrides for asr train, e.g. optim.epochs=30]
#   --stage N --stop-stage M  run stages N..M only (default 1..6)
#   --train-set LIST          training subsets (default train-clean-100; all 960 h:
#                             train-clean-100,train-clean-360,train-other-500; mini LibriSpeech, for a CPU:
#                             train-clean-5)
#   --subsets LIST            evaluation subsets (default dev-clean,dev-other,test-clean,test-other; with
#                             train-clean-5: dev-clean-2); the dev-* ones also pick the best epoch during training
#   --config NAME             conf/NAME.yaml (default librispeech_100; librispeech_mini for train-clean-5;
#                             librispeech_960 for any other train set)
#   --bpe N                   sentencepiece BPE units, N pieces, instead of characters (default 0: characters)
#   --avg N                   evaluate the average of the last N epochs' weights (default 5; 0: best.pt)
#   --lm FILE                 also beam-search with this KenLM LM (asr lm build: words, with --bpe too; or --unit char);
#                             or the name of one of LibriSpeech's own LMs (3-gram.pruned.1e-7, 3-gram, 4-gram):
#                             stage 1 downloads it (asr download librispeech-lm) to CORPUS/librispeech-lm/NAME.arpa
#   --decoder-config FILE     beam settings, e.g. conf/decoder/beam_tuned.yaml from tools/tune_lm.py; without it, --lm
#                             gets its weight and word score tuned on the dev subsets (RUN/eval/beam_tuned.yaml)
#   --data DIR                manifests and statistics (default data/librispeech)
#   --corpus DIR              where LibriSpeech/SUBSET/ is or goes (default DATA/download)
#   --run DIR                 run directory (default runs/CONFIG)
#   --mirror URL              base URL serving SUBSET.tar.gz (default OpenSLR)
#   --checksums FILE          'MD5  SUBSET.tar.gz' lines replacing the published MD5s (a private mirror)
#   --device DEV              device for stage 5 (default: cuda when available, else cpu)
# Environment: SKIP_SETUP=1 (do not run tools/setup.sh), EVAL_WORKERS=N (stage 5's audio-reading processes;
#              default 4 on a GPU, 0 on the CPU), TUNE_UTTS=N (dev utterances the LM weights are tuned on; 500),
#              BEAM_JOBS=N (beam-search processes of stage 5, each with its own copy of the LM; default half the
#              cores, at most 4).
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=1 stop_stage=6
train_set=train-clean-100 subsets=""
config="" bpe=0 avg=5 lm="" decoder_config="" data=data/librispeech corpus="" run="" mirror="" checksums=""
device=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --train-set) train_set=$2; shift 2 ;;
    --subsets) subsets=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --bpe) bpe=$2; shift 2 ;;
    --avg) avg=$2; shift 2 ;;
    --lm) lm=$2; shift 2 ;;
    --decoder-config) decoder_config=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --run) run=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --checksums) checksums=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --*) echo "error: unknown option $1 (see the top of $0)" >&2; exit 2 ;;
    *) break ;;
  esac
done
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
say() { echo "$*" >&2; }
# write stdin to FILE all at once: a reader (and the skip checks) never sees half of it
atomic() { local tmp; tmp="$1.tmp.$$"; cat > "$tmp" && mv -f "$tmp" "$1"; }

[ "${SKIP_SETUP:-0}" = 1 ] || bash tools/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

if [ "$train_set" = train-clean-100 ]; then train_name=train-clean-100; default_config=librispeech_100
elif [ "$train_set" = train-clean-5 ]; then train_name=train-clean-5; default_config=librispeech_mini
  subsets=${subsets:-dev-clean-2}  # mini LibriSpeech's only evaluation subset
elif [ "$train_set" = train-clean-100,train-clean-360,train-other-500 ]; then train_name=train-960
  default_config=librispeech_960
else train_name=$(echo "$train_set" | tr , +); default_config=librispeech_960; fi
config=${config:-$default_config}
subsets=${subsets:-dev-clean,dev-other,test-clean,test-other}
IFS=, read -r -a train_subsets <<< "$train_set"
IFS=, read -r -a eval_subsets <<< "$subsets"
all_subsets=$(printf '%s\n' "${train_subsets[@]}" "${eval_subsets[@]}" | awk 'NF && !seen[$0]++' | paste -sd, -)
dev_subsets=$(printf '%s\n' "${eval_subsets[@]}" | grep '^dev' | paste -sd, - || true)
corpus=${corpus:-$data/download}
official_lm=""
case "$lm" in  # the name of one of LibriSpeech's own LMs (and no such file here): stage 1 fetches it
  3-gram.pruned.1e-7|3-gram|4-gram) [ -f "$lm" ] || { official_lm=$lm; lm=$corpus/librispeech-lm/$lm.arpa; } ;;
esac
run=${run:-runs/$config}
stats=$data/$train_name.stats.json
bpe_model=$data/$train_name.bpe$bpe.model
if [ -z "$dev_subsets" ]; then
  dev_subsets=${eval_subsets[0]}
  say "warning: no dev-* subset in --subsets: $dev_subsets picks the best epoch"
fi

if run_stage 1; then
  missing=$(for s in ${all_subsets//,/ }; do [ -f "$corpus/LibriSpeech/$s/.complete" ] || echo "$s"; done \
            | paste -sd, -)
  if [ -z "$missing" ]; then
    say "stage 1: $all_subsets already in $corpus/LibriSpeech, skipping"
  else
    say "stage 1: download $missing"
    asr download librispeech --out "$corpus" --subsets "$missing" ${mirror:+--mirror "$mirror"} \
      ${checksums:+--checksums "$checksums"}
  fi
  if [ -n "$official_lm" ]; then
    if [ -f "$lm" ]; then say "stage 1: $lm already there, skipping"
    else
      say "stage 1: download LibriSpeech's $official_lm LM"
      lm_mirror=$mirror  # OpenSLR keeps the LMs in resource 11, the corpus in resource 12
      [[ "$mirror" == */12 ]] && lm_mirror=${mirror%/12}/11
      asr download librispeech-lm --out "$corpus" --subsets "$official_lm" ${lm_mirror:+--mirror "$lm_mirror"} \
        ${checksums:+--checksums "$checksums"}
    fi
  fi
fi

if run_stage 2; then
  marker=$data/.prepared
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$all_subsets $train_name $dev_subsets" ]; then
    say "stage 2: manifests of $all_subsets already in $data ($marker), skipping"
  else
    say "stage 2: manifests of $all_subsets"
    asr prepare librispeech --root "$corpus" --subsets "$all_subsets" --out "$data"
    # one training manifest and one keep-best dev manifest, each the concatenation of its subsets
    if [ "$train_name" != "$train_set" ]; then
      for s in "${train_subsets[@]}"; do cat "$data/$s.jsonl"; done | atomic "$data/$train_name.jsonl"
    fi
    for s in ${dev_subsets//,/ }; do cat "$data/$s.jsonl"; done | atomic "$data/dev.jsonl"
    echo "$all_subsets $train_name $dev_subsets" | atomic "$marker"
  fi
fi

if run_stage 3; then
  if [ -f "$stats" ]; then say "stage 3: $stats exists, skipping"
  else
    say "stage 3: feature statistics of $train_name"
    asr stats --config-name "$config" --manifest "$data/$train_name.jsonl" --out "$stats" --jobs "$(nproc)" "$@"
  fi
  if [ "$bpe" -gt 0 ]; then
    if [ -f "$bpe_model" ]; then say "stage 3: $bpe_model exists, skipping"
    else asr bpe --manifest "$data/$train_name.jsonl" --vocab-size "$bpe" --out "$bpe_model"; fi
  fi
fi

train_args=(--config-name "$config" run_dir="$run" data.train_manifest="$data/$train_name.jsonl"
            data.dev_manifest="$data/dev.jsonl" data.stats="$stats" keep_epochs="$avg")
[ "$bpe" -gt 0 ] && train_args+=(tokenizer=bpe tokenizer.vocab_size="$bpe" tokenizer.model="$bpe_model")
train_args+=("$@")
if run_stage 4; then
  marker=$run/.trained
  if [ -f "$marker" ]; then
    say "stage 4: training finished earlier ($marker), skipping"
    [ "$(cat "$marker")" = "${train_args[*]}" ] || say "warning: it was trained with other arguments: $(cat "$marker")"
  else
    say "stage 4: train ($config)"
    asr train "${train_args[@]}"
    if [ "$avg" -gt 0 ]; then
      have=$(find "$run" -maxdepth 1 -name 'epoch-*.pt' | wc -l)
      [ "$have" -ge "$avg" ] || say "warning: only $have epoch checkpoint(s) to average, not $avg"
      asr average --run-dir "$run" --last "$(( have < avg ? have : avg ))" --out "$run/avg.pt"
    fi
    echo "${train_args[*]}" | atomic "$marker"
  fi
fi

model=$run/best.pt
[ "$avg" -gt 0 ] && model=$run/avg.pt
if run_stage 5; then
  [ -f "$model" ] || { say "error: $model not found: run stage 4 first"; exit 2; }
  [ -z "$official_lm" ] || [ -f "$lm" ] || { say "error: $lm not found: run stage 1 (it downloads the LM)"; exit 2; }
  decoders=greedy
  if [ -n "$lm" ] || [ -n "$decoder_config" ]; then decoders="greedy beam"; fi
  mkdir -p "$run/eval"
  [ -n "$device" ] || device=$(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
  beam_jobs=${BEAM_JOBS:-$(( $(nproc) / 2 > 4 ? 4 : ($(nproc) / 2 > 1 ? $(nproc) / 2 : 1) ))}  # one LM copy each
  if [ -n "$lm" ] && [ -z "$decoder_config" ]; then  # an LM's weight and word score, tuned on the dev subsets
    decoder_config=$run/eval/beam_tuned.yaml
    if [ "$decoder_config" -nt "$model" ] && [ "$decoder_config" -nt "$lm" ]; then
      say "stage 5: $decoder_config is newer than the model and the LM, skipping the tuning"
    else
      say "stage 5: LM weight and word score tuned on up to ${TUNE_UTTS:-500} utterances of $dev_subsets"
      python3 tools/tune_lm.py --model "$model" --manifest "$data/dev.jsonl" --lm "$lm" --limit "${TUNE_UTTS:-500}" \
        --device "$device" --out "$decoder_config"
    fi
  fi
  for s in "${eval_subsets[@]}"; do
    for dec in $decoders; do
      out=$run/eval/$s.$dec.txt
      if [ "$out" -nt "$model" ] && { [ "$dec" = greedy ] || [ "$out" -nt "$decoder_config" ]; }; then
        say "stage 5: $out is newer than $(basename "$model")${decoder_config:+ and $(basename "$decoder_config")}," \
            "skipping"
        continue
      fi
      say "stage 5: $s, $dec decoding"
      beam=()
      [ "$dec" = beam ] && beam=(--decoder beam ${lm:+--lm "$lm"} ${decoder_config:+--decoder-config "$decoder_config"}
                                 --jobs "$beam_jobs")
      asr eval --model "$model" --manifest "$data/$s.jsonl" --report "$run/eval/$s.$dec.jsonl" --device "$device" \
        --workers "${EVAL_WORKERS:-$([ "$device" = cpu ] && echo 0 || echo 4)}" "${beam[@]}" | atomic "$out"
    done
  done
fi

if run_stage 6; then
  python3 - "$run" "$data" "$train_name" "$subsets" "$model" "$config" <<'PY' | atomic "$run/RESULTS.md"
import csv, json, os, sys, time
run, data, train_name, subsets, model, config = sys.argv[1:]
def manifest(name):
    utts = [json.loads(l) for l in open(f"{data}/{name}.jsonl") if l.strip()]
    return len(utts), sum(u["duration"] for u in utts) / 3600
def result(s, dec):
    path = f"{run}/eval/{s}.{dec}.txt"
    return dict(l.split() for l in open(path) if l.strip()) if os.path.isfile(path) else {}
n, h = manifest(train_name)
epochs = len(list(csv.DictReader(open(f"{run}/dev.csv")))) if os.path.isfile(f"{run}/dev.csv") else 0
beam = any(result(s, "beam") for s in subsets.split(","))
print(f"# LibriSpeech results: {run}\n")
print(f"- config `{config}`; training set `{train_name}`: {n} utterances, {h:.2f} h; {epochs} epoch(s)")
print(f"- evaluated `{os.path.basename(model)}`; WER/CER in %, from `asr eval` (`eval/SET.DECODER.txt`)")
print(f"- written {time.strftime('%Y-%m-%d %H:%M')}\n")
head = "| subset | utterances | hours | WER greedy | CER greedy |" + (" WER beam | CER beam |" if beam else "")
print(head)
print("|" + "---|" * (head.count("|") - 1))
for s in subsets.split(","):
    n, h = manifest(s)
    g, b = result(s, "greedy"), result(s, "beam")
    row = f"| {s} | {n} | {h:.2f} | {g.get('WER', '-')} | {g.get('CER', '-')} |"
    print(row + (f" {b.get('WER', '-')} | {b.get('CER', '-')} |" if beam else ""))
PY
  cat "$run/RESULTS.md"
fi
