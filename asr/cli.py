"""The ``asr`` command: synth-corpus, download, synth-digits, synth-noise, prepare, stats, bpe, train, average,
info, eval, transcribe, lm, export, serve.

User errors, and failed reads and writes of a named file or a full disk, print one line, ``error: ...``, and exit
with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from asr.errors import UserError, os_error_message, user_message


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("train", "stats"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra) or 0
    except UserError as e:
        print(f"error: {user_message(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a path that cannot be read or written, a full disk: the user's to fix, in one line
        message = os_error_message(e)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    from asr import __version__

    p = argparse.ArgumentParser(prog="asr", description="BiLSTM-CTC speech recognition: train, evaluate, transcribe.")
    p.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("synth-corpus", help="make the embedded default corpus with espeak-ng (no download)")
    s.add_argument("--out", required=True, type=Path, help="output folder; the corpus goes to OUT/LibriSpeech/")
    s.add_argument("--hours", type=float, default=None, help="hours of training audio (default from SynthConfig)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--jobs", type=int, default=None, help="parallel espeak-ng processes")
    s.add_argument("--made-up-voices", type=int, default=None,
                   help="also speak training sentences with N voice variants bred from the training variants "
                        "(default from SynthConfig)")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("download", help="download and extract a corpus (resumable, checksum-verified)")
    s.add_argument("corpus", choices=["librispeech", "librispeech-lm", "fsdd", "musan", "rirs"],
                   help="librispeech-lm: LibriSpeech's official n-gram LMs (OpenSLR 11) as lower-case ARPA files for "
                        "--lm; musan: MUSAN's noise, music and speech (OpenSLR 17), for data.noise; rirs: room "
                        "impulse responses and noises (OpenSLR 28), for data.rir")
    s.add_argument("--out", required=True, type=Path,
                   help="librispeech: OUT/LibriSpeech/SUBSET; librispeech-lm: OUT/librispeech-lm/NAME.arpa; fsdd: "
                        "OUT/free-spoken-digit-dataset-VERSION; musan: OUT/musan; rirs: OUT/RIRS_NOISES")
    s.add_argument("--subsets", default="", help="librispeech: comma-separated, e.g. train-clean-100,dev-clean; "
                                                 "librispeech-lm: which LMs (default 3-gram.pruned.1e-7; also "
                                                 "3-gram, 4-gram)")
    s.add_argument("--mirror", default=None, help="librispeech(-lm), musan, rirs: base URL serving the archives "
                                                  "(default https://www.openslr.org/resources/12, 11, 17, 28)")
    s.add_argument("--keep-archives", action="store_true", help="keep the archives after extraction")
    s.add_argument("--checksums", type=Path, default=None,
                   help="librispeech(-lm), musan, rirs: md5sum- or sha256sum-style file ('DIGEST  SUBSET.tar.gz' "
                        "per line) replacing the published checksums, for a private mirror")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("synth-digits", help="make connected-digit strings from FSDD recordings (LibriSpeech layout)")
    s.add_argument("--fsdd", required=True, type=Path, help="FSDD recordings/ folder ({digit}_{speaker}_{n}.wav)")
    s.add_argument("--out", required=True, type=Path, help="output folder; the corpus goes to OUT/LibriSpeech/")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--test-speaker", default=None, help="speaker held out for digits-test (default from DigitsConfig)")
    s.add_argument("--dev-speaker", default=None,
                   help="speaker held out for digits-dev (default: held-out recordings of the training speakers)")
    s.add_argument("--train-utts", type=int, default=None, help="digit strings in digits-train")
    s.add_argument("--dev-utts", type=int, default=None, help="digit strings in digits-dev")
    s.add_argument("--test-utts", type=int, default=None, help="digit strings in digits-test")
    s.add_argument("--tts-voices", type=int, default=None,
                   help="espeak-ng voices added to training as extra speakers (0: none; default from DigitsConfig)")
    s.add_argument("--flite-voices", default=None,
                   help="comma-separated flite voices (kal16,awb,rms,slt) added to training as extra speakers, "
                        "each as several personas; needs flite (apt-get install flite); '' : none")
    s.add_argument("--flite-share", type=float, default=None,
                   help="fraction of the training strings spoken by a flite persona (default from DigitsConfig)")
    s.add_argument("--flite-personas", type=int, default=None,
                   help="speakers made from each flite voice, each with its own pitch and tempo")
    s.set_defaults(func=cmd_synth_digits)

    s = sub.add_parser("synth-noise", help="make a folder of noise recordings (coloured noise, hum, babble) for "
                                           "data.noise and asr eval --noise, or of room impulse responses",
                       description="Writes OUT/KIND-NNN.flac, 16 kHz mono. white/pink/brown: Gaussian noise with a "
                                   "1/f^0, 1/f, 1/f^2 spectrum and a slow swell; hum: 50/60 Hz mains hum; babble: "
                                   "4-8 talkers at once from --babble-from; rir (only when named, into a folder "
                                   "of its own): room impulse responses, RT60 0.2-1.0 s, for data.rir and asr eval "
                                   "--rir. Deterministic from --seed; a re-run writes only missing files.")
    s.add_argument("--out", required=True, type=Path, help="output folder")
    s.add_argument("--kinds", default=None,
                   help="comma-separated, from white,pink,brown,hum,babble,rir (default: the noises; babble "
                        "only with --babble-from)")
    s.add_argument("--babble-from", type=Path, default=None, metavar="DIR",
                   help="folder of speech recordings for babble (searched recursively)")
    s.add_argument("--files", type=int, default=4, help="files per kind (default 4)")
    s.add_argument("--seconds", type=float, default=30.0, help="length of each file, seconds (default 30)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_synth_noise)

    s = sub.add_parser("prepare", help="read a corpus into JSONL manifests",
                       description="librispeech: ROOT holds LibriSpeech/SUBSET/SPK/CH/*.flac + *.trans.txt. "
                                   "commonvoice: ROOT is a Common Voice language folder (clips/, SPLIT.tsv). "
                                   "folder: your own recordings, each audio file under ROOT with a same-named "
                                   ".txt (or .lab) transcript beside it.")
    s.add_argument("corpus", choices=["librispeech", "commonvoice", "folder"])
    s.add_argument("--root", required=True, type=Path,
                   help="librispeech: the folder holding LibriSpeech/ (or LibriSpeech/ itself); commonvoice: "
                        "cv-corpus-VERSION/LANG; folder: the recordings' folder")
    s.add_argument("--subsets", help="comma-separated: LibriSpeech subsets (train-clean-100,dev-clean) or "
                                     "Common Voice splits (train,dev,test); not for folder")
    s.add_argument("--name", help="folder only: the manifest's name (default: the folder's name)")
    s.add_argument("--out", required=True, type=Path, help="manifests go to OUT/SUBSET.jsonl (folder: OUT/NAME.jsonl)")
    s.add_argument("--strict", action="store_true", help="stop at the first bad line instead of skipping it")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train", help="train a model; extra arguments are Hydra overrides (key=value)",
                       description="Train. Overrides: e.g. run_dir=runs/x model.hidden=512 optim.epochs=20 "
                                   "data=librispeech model=librispeech_100. Config: conf/config.yaml.")
    s.add_argument("--config-name", default="config", help="primary config in conf/ (default: config)")
    s.add_argument("--cfg", action="store_true", help="print the composed config and exit")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="WER/CER of a model on a manifest")
    s.add_argument("--model", required=True, type=Path, help="checkpoint, e.g. runs/demo/best.pt")
    s.add_argument("--manifest", required=True, type=Path, nargs="+",
                   help="JSONL manifest(s); with several, each gets a '== MANIFEST' line, then its WER and CER lines")
    s.add_argument("--report", type=Path, default=None,
                   help="per-utterance JSONL report (default: next to the model, eval-MANIFEST.jsonl for each)")
    s.add_argument("--threads", type=int, default=0,
                   help="torch threads; 0: all cores (default; use 1 when other jobs share the machine)")
    s.add_argument("--by-speaker", action="store_true",
                   help="also print WER and CER per speaker (the id up to its first '-'), worst first")
    s.add_argument("--errors", type=int, default=0, metavar="N",
                   help="also print the N most frequent word substitutions, deletions and insertions")
    s.add_argument("--workers", type=int, default=0,
                   help="DataLoader processes that read the audio (default 0: this process); on a GPU the "
                        "log-mels are computed there and the workers only decode")
    s.add_argument("--jobs", type=int, default=1,
                   help="beam search in this many processes, each with its own copy of the LM (default 1), while "
                        "the model runs on the next batch: for large test sets on many cores")
    s.add_argument("--noise", type=Path, default=None, metavar="DIR",
                   help="mix noise from this folder of recordings (e.g. from 'asr synth-noise') into every "
                        "utterance at --snr, to measure robustness; each utterance's noise is drawn from its id")
    s.add_argument("--rir", type=Path, default=None, metavar="DIR",
                   help="convolve every utterance with a room impulse response from this folder (before any "
                        "--noise), drawn from its id")
    s.add_argument("--snr", type=float, default=None, help="with --noise: signal-to-noise ratio, dB (default 10)")
    s.add_argument("--noise-seed", type=int, default=0,
                   help="with --noise or --rir: another seed draws other segments and rooms")
    _decoder_args(s)
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("transcribe", help="transcribe audio files or folders: text, JSON with word times, subtitles")
    s.add_argument("--model", required=True, type=Path, help="checkpoint (RUN_DIR/best.pt) or an 'asr export' file")
    s.add_argument("files", nargs="*", type=Path,
                   help="audio files, or folders searched recursively for .wav .flac .ogg .mp3")
    s.add_argument("--list", type=Path, default=None,
                   help="text file with one audio path per line (relative to the current directory; # comments)")
    s.add_argument("--format", choices=["txt", "json", "srt", "vtt"], default="txt",
                   help="txt: FILE<TAB>TEXT; json: one object per file with word times and confidences; "
                        "srt/vtt: subtitles, to stdout for one file, else to FILE.srt/.vtt beside each input "
                        "(or in --out-dir)")
    s.add_argument("--out-dir", type=Path, default=None,
                   help="srt/vtt: write the subtitle files here instead (sub-folders of a folder argument are kept)")
    s.add_argument("--jobs", type=int, default=1,
                   help="worker processes with one torch thread each (default 1: one process of --threads)")
    s.add_argument("--threads", type=int, default=1,
                   help="torch threads of the (single) process; 0: all cores. Default 1: on a busy machine 2 threads "
                        "were 2-10x slower than 1 (the LSTM waits on descheduled threads every time step)")
    s.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="one file only: also draw its spectrogram, CTC posteriors and aligned words to PNG")
    g = s.add_argument_group("long audio (asr/longform.py)")
    g.add_argument("--window", type=float, default=None, help="seconds the model sees at once (default 60)")
    g.add_argument("--context", type=float, default=None,
                   help="seconds discarded at each inner window edge, overlapping the neighbour (default 5)")
    g.add_argument("--long-above", type=float, default=None, help="use windows above this duration (default 70 s)")
    _decoder_args(s)
    s.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("align", help="word times of known transcripts (CTC forced alignment), and how well each fits",
                       description="Aligns each manifest line's text (or --text in FILE) to its audio. Prints CTM "
                                   "lines (ID 1 START DURATION WORD CONFIDENCE) or JSONL rows with the words, the "
                                   "forced path's log-prob per frame and its gap below the model's best path: a large "
                                   "gap means the transcript does not match what the model hears.")
    s.add_argument("--model", required=True, type=Path, help="checkpoint, e.g. runs/demo/best.pt")
    s.add_argument("--manifest", type=Path, default=None, help="JSONL manifest whose texts to align")
    s.add_argument("file", nargs="?", type=Path, default=None, help="one audio file (with --text)")
    s.add_argument("--text", default=None, help="the transcript of FILE")
    s.add_argument("--format", choices=["ctm", "jsonl"], default="ctm", help="output format (default ctm)")
    s.add_argument("--out", type=Path, default=None, help="write here (atomically) instead of stdout")
    s.add_argument("--worst", type=int, default=5, metavar="N",
                   help="list the N utterances with the largest gap on stderr (default 5; 0: none)")
    s.add_argument("--threads", type=int, default=1, help="torch threads; 0: all cores (default 1, as transcribe)")
    _device_arg(s)
    s.set_defaults(func=cmd_align)

    s = sub.add_parser("export", help="export the model (log-mel features -> log-probs) to TorchScript or ONNX",
                       description="The log-mel front end stays in Python (asr.features.LogMel); see asr/export.py.")
    s.add_argument("--model", required=True, type=Path, help="checkpoint, e.g. runs/demo/best.pt")
    s.add_argument("--format", choices=["torchscript", "onnx"], required=True)
    s.add_argument("--out", required=True, type=Path, help="output file, e.g. model.onnx")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("serve", help="HTTP server: POST /transcribe (audio upload) -> JSON transcript; GET /health")
    s.add_argument("--model", required=True, type=Path, help="checkpoint or an 'asr export' file")
    s.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1; the server has no auth)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--max-mb", type=float, default=50.0, help="largest upload, MiB (default 50)")
    s.add_argument("--timeout", type=float, default=300.0, help="request time limit, seconds (default 300)")
    s.add_argument("--threads", type=int, default=1, help="torch threads; 0: all cores (default 1, as transcribe)")
    _decoder_args(s)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("lm", help="word or character n-gram language models for beam search")
    lm_sub = s.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")
    s = lm_sub.add_parser("build",
                          help="estimate a modified Kneser-Ney ARPA LM from text (lmplz when built, else Python)")
    s.add_argument("--text", required=True, type=Path, nargs="+",
                   help="text file(s), one sentence per line; LibriSpeech *.trans.txt work as they are")
    s.add_argument("--unit", choices=["word", "char"], default="word",
                   help="word (default), or char: an LM of letters with '|' closing each word, for beam search "
                        "without a lexicon that still spells words it never saw (char models only)")
    s.add_argument("--order", type=int, default=None, help="n-gram order (default 3 for words, 6 for characters)")
    s.add_argument("--out", required=True, type=Path, help="ARPA file, or the KenLM binary with --binary")
    s.add_argument("--binary", action="store_true",
                   help="also convert to a KenLM binary at OUT (ARPA kept as OUT.arpa)")
    s.add_argument("--backend", choices=["auto", "lmplz", "python"], default="auto",
                   help="auto: lmplz when tools/build_kenlm.sh has built it, else the Python estimator")
    s.add_argument("--lexicon", type=Path, default=None,
                   help="also write the LM's words as a character lexicon (for the faster closed-vocabulary beam "
                        "search; BPE models: --lm alone spells the LM's words in their pieces)")
    s.set_defaults(func=cmd_lm_build)
    s = lm_sub.add_parser("convert", help="an ARPA LM (or .arpa.gz) as plain ARPA text with lower-case words, as "
                                          "beam search needs (LibriSpeech's official LMs are upper case)")
    s.add_argument("arpa", type=Path, help="ARPA file, plain or gzip-compressed (e.g. 3-gram.pruned.1e-7.arpa.gz)")
    s.add_argument("--out", required=True, type=Path, help="the lower-cased ARPA file to write")
    s.set_defaults(func=cmd_lm_convert)

    s = sub.add_parser("stats", help="per-bin feature mean/std of a training manifest, for data.stats",
                       description="Writes the JSON that data.stats names. Extra arguments are Hydra overrides "
                                   "(the features.* settings must be those of the training run).")
    s.add_argument("--manifest", required=True, type=Path, help="training manifest (JSONL)")
    s.add_argument("--out", required=True, type=Path, help="statistics JSON, e.g. data/librispeech/train.stats.json")
    s.add_argument("--config-name", default="config", help="primary config in conf/ whose features to use")
    s.add_argument("--max-utts", type=int, default=0, help="use this many random utterances (default 0: all)")
    s.add_argument("--jobs", type=int, default=2, help="feature worker processes (default 2)")
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("bpe", help="train a sentencepiece BPE model on manifests' transcripts (tokenizer=bpe)")
    s.add_argument("--manifest", required=True, type=Path, nargs="+", help="training manifest(s) (JSONL)")
    s.add_argument("--vocab-size", type=int, default=256, help="pieces incl. <unk>; the model adds the CTC blank")
    s.add_argument("--out", required=True, type=Path, help="sentencepiece .model file, for tokenizer.model")
    s.set_defaults(func=cmd_bpe)

    s = sub.add_parser("info", help="what a checkpoint holds: model, features, tokens, training progress")
    s.add_argument("--model", required=True, type=Path, help="checkpoint, e.g. runs/demo/best.pt")
    s.add_argument("--json", action="store_true", help="one JSON object instead of aligned lines")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("average", help="average the weights of several checkpoints into one")
    s.add_argument("--run-dir", type=Path, default=None, help="run directory with epoch-K.pt (train keep_epochs=N)")
    s.add_argument("--last", type=int, default=None, help="average the last N epoch-K.pt of --run-dir")
    s.add_argument("--checkpoints", type=Path, nargs="+", default=None, help="or these checkpoint files")
    s.add_argument("--out", type=Path, default=None, help="output checkpoint (default RUN_DIR/avg.pt)")
    s.set_defaults(func=cmd_average)
    _no_abbreviations(p)
    return p


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """Options must be spelled out, in every sub-command: otherwise ``transcribe --out F`` would be read as
    ``--out-dir F`` (subtitles only) and quietly write nothing there."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _no_abbreviations(child)


def _device_arg(s: argparse.ArgumentParser) -> None:
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (a GPU when there is one)")
    s.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: run the model under bf16 autocast, about 2x faster on a CPU that computes bf16 "
                        "(avx512_bf16 or AMX: AMD Zen 4, Intel Sapphire Rapids) and on recent GPUs; elsewhere it "
                        "is emulated and slower (a warning says so). Default fp32")


def _decoder_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--decoder", choices=["greedy", "beam"], default=None,
                   help="default: beam when a beam option or --decoder-config is given, else greedy")
    _device_arg(s)
    b = s.add_argument_group("beam search (asr/config.py DecoderConfig has the units)")
    b.add_argument("--decoder-config", type=Path, default=None,
                   help="decoder YAML, e.g. conf/decoder/beam_tuned.yaml from tools/tune_lm.py; flags override it")
    b.add_argument("--lm", type=Path, default=None,
                   help="KenLM ARPA or binary LM (asr lm build): of words, or of characters (--unit char: any "
                        "spelling can come out, no lexicon)")
    b.add_argument("--lm-weight", type=float, default=None, help="multiplies the LM log10 probabilities")
    b.add_argument("--word-score", type=float, default=None, help="bonus per word")
    b.add_argument("--beam-size", type=int, default=None, help="hypotheses kept per frame")
    b.add_argument("--lexicon", type=Path, default=None,
                   help="restrict output to these words (word c h a r s |; BPE models: word ▁pie ces)")
    b.add_argument("--lexicon-free", action="store_true", default=None,
                   help="with --lm and no --lexicon: let any spelling through (default: only the LM's words)")
    b.add_argument("--hotword", action="append", default=None, help="word to favour (repeatable)")


_BEAM_FLAGS = {"lm": "lm", "lm_weight": "lm_weight", "word_score": "word_score", "beam_size": "beam_size",
               "lexicon": "lexicon", "lexicon_free": "lexicon_free",
               "hotword": "hotwords"}  # argparse dest -> DecoderConfig field


def _decoder_config(args):
    """DecoderConfig from --decoder-config and the beam flags (flags win)."""
    from dataclasses import replace

    from asr.config import DecoderConfig

    given = {field: getattr(args, dest) for dest, field in _BEAM_FLAGS.items() if getattr(args, dest) is not None}
    given = {k: str(v) if isinstance(v, Path) else v for k, v in given.items()}
    if args.decoder == "greedy" and (given or args.decoder_config):
        flags = ", ".join("--" + d.replace("_", "-") for d in _BEAM_FLAGS if getattr(args, d) is not None)
        raise UserError(f"{flags or '--decoder-config'}: beam search options, not for --decoder greedy")
    cfg = _load_decoder_yaml(args.decoder_config) if args.decoder_config else DecoderConfig()
    kind = args.decoder or ("beam" if given or args.decoder_config else cfg.type)
    return replace(cfg, type=kind, **given)


def _load_decoder_yaml(path: Path):
    """A decoder YAML checked against the DecoderConfig schema."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from asr.config import DecoderConfig

    if not path.is_file():
        raise UserError(f"{path}: no such decoder config")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DecoderConfig), OmegaConf.load(path)))
    except (OmegaConfBaseException, ValueError) as e:
        raise UserError(f"{path}: bad decoder config: {str(e).splitlines()[0]}") from None


def cmd_synth(args, _extra) -> int:
    from dataclasses import replace

    from asr.corpus.synth import SynthConfig, synth_corpus

    cfg = SynthConfig(seed=args.seed)
    if args.hours is not None:
        cfg = replace(cfg, hours=args.hours)
    if args.jobs is not None:
        cfg = replace(cfg, jobs=args.jobs)
    if args.made_up_voices is not None:
        cfg = replace(cfg, made_up_voices=args.made_up_voices)
    summary = synth_corpus(args.out, cfg)
    print(json.dumps(summary, indent=1, default=str))
    return 0


def cmd_download(args, _extra) -> int:
    if args.corpus == "fsdd":
        from asr.corpus.digits import download_fsdd

        print(download_fsdd(args.out))
        return 0
    from asr.corpus.download import OPENSLR_CORPORA, OPENSLR_MIRROR, download_librispeech, download_openslr

    checksums = _read_checksums(args.checksums) if args.checksums else None
    if args.corpus == "librispeech-lm":
        from asr.corpus.download import LM_MIRROR, download_librispeech_lm

        names = [n for n in args.subsets.split(",") if n] or ["3-gram.pruned.1e-7"]
        for name, path in download_librispeech_lm(names, args.out, mirror=args.mirror or LM_MIRROR,
                                                  checksums=checksums, keep_archives=args.keep_archives).items():
            print(f"{name}\t{path}")
        return 0
    if args.corpus in OPENSLR_CORPORA:
        spec = OPENSLR_CORPORA[args.corpus]
        if args.subsets:
            raise UserError(f"--subsets is for librispeech; {args.corpus} is one archive")
        path = download_openslr(args.corpus, args.out, mirror=args.mirror, keep_archive=args.keep_archives,
                                md5=(checksums or {}).get(_archive_stem(spec.archive)))
        print(f"{args.corpus}\t{path}")
        print(f"use: {spec.use.replace('OUT', str(args.out))}", file=sys.stderr)
        return 0
    subsets = [s for s in args.subsets.split(",") if s]
    for subset, path in download_librispeech(subsets, args.out, mirror=args.mirror or OPENSLR_MIRROR,
                                             checksums=checksums, keep_archives=args.keep_archives).items():
        print(f"{subset}\t{path}")
    return 0


def cmd_synth_digits(args, _extra) -> int:
    from dataclasses import replace

    from asr.corpus.digits import DigitsConfig, synth_digits

    given = {"test_speaker": args.test_speaker, "dev_speaker": args.dev_speaker, "train_utterances": args.train_utts,
             "dev_utterances": args.dev_utts, "test_utterances": args.test_utts, "tts_voices": args.tts_voices,
             "flite_share": args.flite_share, "flite_personas": args.flite_personas}
    if args.flite_voices is not None:
        given["flite_voices"] = tuple(v for v in args.flite_voices.split(",") if v)
    cfg = replace(DigitsConfig(seed=args.seed), **{k: v for k, v in given.items() if v is not None})
    print(json.dumps(synth_digits(args.fsdd, args.out, cfg), indent=1))
    return 0


def cmd_synth_noise(args, _extra) -> int:
    from asr.corpus.noise import KINDS, synth_noise

    if args.kinds is not None:
        kinds = tuple(k for k in args.kinds.split(",") if k)
    else:
        kinds = tuple(k for k in KINDS if k != "rir" and (k != "babble" or args.babble_from is not None))
    paths = synth_noise(args.out, kinds, files_per_kind=args.files, seconds=args.seconds, seed=args.seed,
                        babble_from=args.babble_from)
    import soundfile as sf

    minutes = sum(sf.info(str(p)).duration for p in paths) / 60
    print(f"{args.out}\t{len(paths)} files ({', '.join(kinds)}), {minutes:.1f} min")
    return 0


def cmd_prepare(args, _extra) -> int:
    if args.corpus == "folder":
        from asr.corpus.folder import prepare_folder

        if args.subsets:
            raise UserError("--subsets is for librispeech and commonvoice; a folder is one manifest (--name NAME)")
        path = prepare_folder(args.root, args.out, name=args.name, strict=args.strict)
        print(f"{path.stem}\t{path}")
        return 0
    if args.name:
        raise UserError(f"--name is for folder; {args.corpus} names each manifest after its subset")
    subsets = [s for s in (args.subsets or "").split(",") if s]
    if not subsets:
        raise UserError(f"{args.corpus} needs --subsets, e.g. "
                        f"{'train-clean-100,dev-clean' if args.corpus == 'librispeech' else 'train,dev,test'}")
    if args.corpus == "librispeech":
        from asr.corpus.librispeech import prepare_librispeech as prepare
    else:
        from asr.corpus.commonvoice import prepare_commonvoice as prepare
    for subset, path in prepare(args.root, subsets, args.out, strict=args.strict).items():
        print(f"{subset}\t{path}")
    return 0


def cmd_train(args, overrides) -> int:
    from omegaconf import OmegaConf

    from asr.config import compose
    from asr.train import StopRequested, train

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UserError(f"not a key=value override: {bad[0]!r} (e.g. optim.epochs=20)")
    cfg = compose(overrides, args.config_name)
    if args.cfg:
        print(OmegaConf.to_yaml(cfg))
        return 0
    try:
        run_dir = train(cfg)
    except StopRequested as e:
        print(str(e), file=sys.stderr)
        return 130
    print(f"best model: {run_dir / 'best.pt'}")
    return 0


def cmd_eval(args, _extra) -> int:
    from asr.checkpoint import load_model
    from asr.io import check_can_create
    from asr.decode import build_decoder
    from asr.dist import pick_device
    from asr.features import LogMel
    from asr.manifest import read_manifest
    from asr.precision import autocast_dtype

    _set_threads(args.threads)
    if args.workers < 0:
        raise UserError(f"--workers {args.workers}: use 0 (read audio in this process) or more")
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: use 1 (search in this process) or more")
    stems = [m.stem for m in args.manifest]
    if len(args.manifest) > 1 and args.report is not None:
        raise UserError("--report names one report: with several manifests leave it out (each report goes next to "
                        "the model as eval-MANIFEST.jsonl)")
    if len(set(stems)) < len(stems):
        raise UserError(f"manifests with the same name ({', '.join(sorted({x for x in stems if stems.count(x) > 1}))}) "
                        f"would write the same report; evaluate them one at a time with --report")
    if args.snr is not None and args.noise is None:
        raise UserError("--snr is for --noise DIR (a folder of noise recordings); give one")
    if args.noise_seed != 0 and args.noise is None and args.rir is None:
        raise UserError("--noise-seed is for --noise DIR or --rir DIR; give one")
    if args.report is not None:  # a folder it cannot go in fails now, not after the decoding
        check_can_create(args.report.parent, f"--report {args.report}")
    device = pick_device(args.device)
    model, tok, cfg = load_model(args.model, device)
    amp = autocast_dtype(args.precision, device)  # None (fp32) or bf16: the model under autocast
    manifests = [(m, read_manifest(m)) for m in args.manifest]  # all read (and checked) before any decoding
    augment = {}
    if args.rir is not None:
        from asr.noise import Reverb

        augment["rir"] = Reverb(args.rir, prob=1.0, sample_rate=cfg.features.sample_rate, key="--rir")
        print(f"reverberation: {len(augment['rir'].files)} impulse responses of {args.rir} (seed {args.noise_seed})",
              file=sys.stderr)
    if args.noise is not None:
        from asr.noise import NoiseMixer

        snr = 10.0 if args.snr is None else args.snr  # dB
        augment["noise"] = NoiseMixer(args.noise, (snr, snr), prob=1.0, sample_rate=cfg.features.sample_rate,
                                      key="--noise")
        print(f"noise: {len(augment['noise'].files)} files of {args.noise} mixed in at {snr:g} dB SNR "
              f"(seed {args.noise_seed})", file=sys.stderr)
    decoder_cfg = _decoder_config(args)
    if args.jobs > 1 and decoder_cfg.type != "beam":
        raise UserError(f"--jobs {args.jobs} is for beam search (--decoder beam); greedy decoding takes no time")
    decoder = build_decoder(decoder_cfg, tok, jobs=args.jobs)
    on_device = LogMel(cfg.features).to(device) if device.type == "cuda" else None  # as training's features_on=auto
    try:
        for path, utts in manifests:
            if len(manifests) > 1:
                print(f"== {path}", flush=True)
            _eval_one(args, path, utts, model, tok, cfg, decoder, device, on_device, augment, amp)
    finally:
        if hasattr(decoder, "close"):
            decoder.close()
    return 0


def _eval_one(args, path: Path, utts, model, tok, cfg, decoder, device, on_device, augment: dict, amp) -> None:
    """Decode and score one manifest; print WER and CER (and what --by-speaker and --errors ask for)."""
    from asr.data import UtteranceDataset
    from asr.evaluate import evaluate, write_report
    from asr.features import LogMel

    ds = UtteranceDataset(utts, LogMel(cfg.features), tok)
    ds.rir, ds.noise = augment.get("rir"), augment.get("noise")
    start = time.perf_counter()
    result = evaluate(model, ds, decoder, device, progress=True, num_workers=args.workers, logmel=on_device,
                      noise_seed=args.noise_seed, precision=amp)
    seconds, audio_s = time.perf_counter() - start, sum(u.duration for u in utts)
    report = args.report or args.model.parent / f"eval-{path.stem}.jsonl"
    write_report(report, result)
    print(f"WER {100 * result.wer:.2f}")
    print(f"CER {100 * result.cer:.2f}")
    if args.by_speaker:
        from asr.evaluate import by_speaker

        print(f"{'speaker':<12} {'utts':>5} {'words':>6} {'WER %':>7} {'CER %':>7}")
        for g in by_speaker(result.rows):
            print(f"{g['speaker']:<12} {g['utterances']:>5} {g['ref_words']:>6} {100 * g['wer']:>7.2f} "
                  f"{100 * g['cer']:>7.2f}")
    if args.errors > 0:
        from asr.evaluate import top_errors

        for kind, pairs in top_errors(result.rows, args.errors).items():
            print(f"{kind} (top {args.errors}): " + (", ".join(f"{w} ({c})" for w, c in pairs) or "none"))
    print(f"utterances {len(ds)} ({audio_s / 3600:.2f} h), decoded in {seconds:.1f} s (real-time factor "
          f"{seconds / max(audio_s, 1e-9):.4f}, features and model included); report {report}", file=sys.stderr,
          flush=True)


def cmd_lm_build(args, _extra) -> int:
    from asr.lm import MAX_ORDER, build_lm

    if args.lexicon and args.unit == "char":
        raise UserError("--lexicon lists an LM's words; a character LM has none (drop --lexicon, or use --unit word)")
    order = args.order if args.order is not None else (3 if args.unit == "word" else MAX_ORDER)
    res = build_lm(args.text, order, args.out, binary=args.binary, backend=args.backend, unit=args.unit)
    t = res.text
    dropped = "".join(sorted(t.dropped))
    print(f"{res.path}\t{res.order}-gram, n-grams per order {res.counts}, {res.backend} estimator", flush=True)
    print(f"read {t.sentences} sentences, {t.words} words" + (f"; dropped characters {dropped!r}" if dropped else ""),
          file=sys.stderr)
    if args.lexicon:
        from asr.beam import lm_vocabulary, write_lexicon

        n = write_lexicon((w for w in lm_vocabulary(res.arpa) if not w.startswith("<")), args.lexicon)
        print(f"{args.lexicon}\tlexicon of {n} words", flush=True)
    return 0


def cmd_lm_convert(args, _extra) -> int:
    from asr.lm import convert_arpa

    if args.out.resolve() == args.arpa.resolve():
        raise UserError(f"--out {args.out} is the input file; write the converted LM elsewhere")
    res = convert_arpa(args.arpa, args.out)
    print(f"{res.path}\tn-grams per order {res.counts}, {res.lowered} words lower-cased", flush=True)
    return 0


def cmd_transcribe(args, _extra) -> int:
    from asr.io import atomic_open
    from asr.longform import LongFormConfig
    from asr.transcribe import SUBTITLES, Recognizer, find_audio, subtitle_path, transcribe_many

    items = find_audio(args.files, args.list)
    if args.plot and len(items) != 1:
        raise UserError(f"--plot draws one file; {len(items)} given")
    if args.out_dir is not None and args.format not in SUBTITLES:
        raise UserError(f"--out-dir is for --format srt/vtt files; --format {args.format} prints to stdout "
                        f"(redirect it: > FILE)")
    to_files = args.format in SUBTITLES and (len(items) > 1 or args.out_dir is not None)
    outs = [subtitle_path(p, root, args.format, args.out_dir) for p, root in items] if to_files else []
    if len(set(outs)) < len(outs):
        clash = next(o for o in outs if outs.count(o) > 1)
        raise UserError(f"two inputs would both write {clash}; use --out-dir with folder arguments")
    given = {"window_s": args.window, "context_s": args.context, "threshold_s": args.long_above}
    longform = LongFormConfig(**{k: v for k, v in given.items() if v is not None})
    _set_threads(args.threads)
    rec = Recognizer(args.model, _decoder_config(args), device=args.device, longform=longform,
                     precision=args.precision)
    paths = [p for p, _ in items]
    if args.plot:
        results = iter([(paths[0], _transcribe_and_plot(rec, paths[0], args.plot))])
    else:
        results = transcribe_many(rec, args.model, paths, args.jobs, words=args.format != "txt")
    failed = []
    for i, (path, t) in enumerate(results):
        if isinstance(t, str):  # the error message of a file that failed
            failed.append(t)
            print(f"error: {t}", file=sys.stderr, flush=True)
        elif args.format == "txt":
            print(f"{path}\t{t.text}", flush=True)
        elif args.format == "json":
            print(json.dumps({"file": str(path), **t.to_dict()}), flush=True)
        elif not to_files:
            print(SUBTITLES[args.format](t.words), end="", flush=True)
        else:
            try:
                with atomic_open(outs[i]) as f:
                    f.write(SUBTITLES[args.format](t.words))
                print(f"{path}\t{outs[i]}", flush=True)
            except OSError as e:
                failed.append(f"{outs[i]}: cannot write ({e.strerror})")
                print(f"error: {failed[-1]}", file=sys.stderr, flush=True)
    return _exit_status(failed, f"of {len(items)} files failed")


def cmd_align(args, _extra) -> int:
    from tqdm import tqdm

    from asr.io import atomic_open
    from asr.manifest import read_manifest
    from asr.transcribe import Recognizer

    if (args.manifest is None) == (args.file is None):
        raise UserError("give either --manifest FILE.jsonl or one audio FILE with --text")
    if args.file is not None and args.text is None:
        raise UserError(f"{args.file}: --text TRANSCRIPT is needed to align one file")
    if args.manifest is not None:
        jobs = [(u.id, u.audio, u.text) for u in read_manifest(args.manifest)]
    else:
        jobs = [(args.file.stem, str(args.file), args.text)]
    _set_threads(args.threads)
    rec = Recognizer(args.model, device=args.device, precision=args.precision)
    rows, failed = [], []
    for uid, audio, text in tqdm(jobs, desc="align", unit="utt", disable=len(jobs) < 2, file=sys.stderr):
        try:
            a = rec.align(audio, text)
        except (UserError, ValueError) as e:
            failed.append(f"{uid}: {e}")
            rows.append({"id": uid, "audio": audio, "error": str(e)})
            continue
        rows.append({"id": uid, "audio": audio, "words": a.words, "logprob_per_frame": round(a.logprob, 4),
                     "gap_per_frame": round(a.gap, 4)})
    if args.format == "ctm":
        lines = [f"{r['id']} 1 {w['start']:.3f} {w['end'] - w['start']:.3f} {w['word']} {w['confidence']:.3f}\n"
                 for r in rows if "words" in r for w in r["words"]]
    else:
        lines = [json.dumps(r) + "\n" for r in rows]
    if args.out is not None:
        with atomic_open(args.out) as f:
            f.writelines(lines)
    else:
        sys.stdout.writelines(lines)
        sys.stdout.flush()
    aligned = sorted((r for r in rows if "words" in r), key=lambda r: -r["gap_per_frame"])
    print(f"aligned {len(aligned)} of {len(rows)} utterances" + (f"; written to {args.out}" if args.out else ""),
          file=sys.stderr)
    if args.worst and len(aligned) > 1:
        print("largest gaps below the model's best path (nats per frame; a transcript that may not match):",
              file=sys.stderr)
        for r in aligned[: args.worst]:
            print(f"  {r['gap_per_frame']:.3f}  {r['id']}", file=sys.stderr)
    return _exit_status(failed, f"of {len(rows)} utterances could not be aligned")


def _exit_status(failed: list[str], what: str) -> int:
    """0, or 2 after listing the items that failed ("error: 2 of 5 files failed:" and a line each)."""
    if not failed:
        return 0
    print(f"error: {len(failed)} {what}:", file=sys.stderr)
    for msg in failed:
        print(f"  {msg}", file=sys.stderr)
    return 2


def _set_threads(n: int) -> None:
    import torch

    if n < 0:
        raise UserError(f"--threads {n}: use 0 (all cores) or more")
    if n:
        torch.set_num_threads(n)


def _transcribe_and_plot(rec, path: Path, png: Path):
    """The transcript of ``path`` (or its error message), with the --plot PNG drawn."""
    from asr.audio import load_audio
    from asr.plots import plot_transcription

    try:
        t = rec.transcribe(path, keep_log_probs=True)
    except UserError as e:
        return str(e)
    feats = rec.logmel(load_audio(path, rec.sample_rate))  # (T, n_mels)
    plot_transcription(png, feats, t.log_probs, t.words, rec.tokenizer, rec.cfg.features,
                       title=f"{path.name}: {t.text[:120]}", subsampling=rec.cfg.model.subsampling)
    print(f"plot: {png}", file=sys.stderr)
    return t


def cmd_export(args, _extra) -> int:
    from asr.export import export

    res = export(args.model, args.format, args.out)
    print(f"{res['path']}\t{res['format']}, max |log-prob difference| from PyTorch {res['max_abs_diff']:.2e}")
    return 0


def cmd_serve(args, _extra) -> int:
    try:
        from asr.serve import serve
    except ImportError as e:
        raise UserError(f"asr serve needs {e.name}: pip install 'asr[serve]'") from None
    from asr.transcribe import Recognizer

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: use 0..65535")
    _set_threads(args.threads)
    rec = Recognizer(args.model, _decoder_config(args), device=args.device, precision=args.precision)
    serve(rec, args.host, args.port, args.max_mb, args.timeout)
    return 0


def _read_checksums(path: Path) -> dict[str, str]:
    """``MD5  SUBSET.tar.gz`` (or ``NAME.zip``, ``NAME.arpa.gz``; SHA-256 digests too) lines (md5sum's or
    sha256sum's output, OpenSLR's md5sum.txt) -> {SUBSET or NAME: digest}."""
    if not path.is_file():
        raise UserError(f"{path}: no such checksum file")
    sums = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        stem = _archive_stem(Path(parts[-1].lstrip("*")).name)
        if len(parts) != 2 or len(parts[0]) not in (32, 64) or stem is None:
            raise UserError(f"{path}:{lineno}: expected 'MD5  SUBSET.tar.gz' (or a SHA-256), got {line.strip()[:80]!r}")
        sums[stem] = parts[0].lower()
    return sums


def _archive_stem(name: str) -> str | None:
    """``SUBSET.tar.gz`` -> ``SUBSET``, ``NAME.zip`` / ``NAME.arpa.gz`` -> ``NAME``; None for other names."""
    suffix = next((x for x in (".tar.gz", ".arpa.gz", ".zip") if name.endswith(x)), None)
    return name[: -len(suffix)] if suffix else None


def cmd_stats(args, overrides) -> int:
    from asr.config import compose, to_dataclass
    from asr.stats import compute_stats, save_stats

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UserError(f"not a key=value override: {bad[0]!r} (e.g. features.n_mels=40)")
    cfg = to_dataclass(compose(overrides, args.config_name))
    stats = compute_stats(args.manifest, cfg.features, max_utts=args.max_utts, workers=args.jobs)
    save_stats(args.out, stats)
    print(f"{args.out}\t{stats['utterances']} utterances, {stats['frames']} frames")
    return 0


def cmd_bpe(args, _extra) -> int:
    from asr.manifest import read_manifest
    from asr.text import normalize_text, train_bpe

    texts = [normalize_text(u.text).text for m in args.manifest for u in read_manifest(m)]
    tok = train_bpe(texts, args.vocab_size, args.out)
    print(f"{args.out}\t{len(tok) - 1} pieces from {len(texts)} transcripts")
    return 0


def cmd_info(args, _extra) -> int:
    from asr.checkpoint import describe

    if not args.model.is_file():
        raise UserError(f"{args.model}: no such checkpoint")
    info = describe(args.model)
    if args.json:
        print(json.dumps(info))
        return 0
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {', '.join(map(str, value)) if isinstance(value, list) else value}")
    return 0


def cmd_average(args, _extra) -> int:
    from asr.checkpoint import last_epoch_checkpoints, write_average

    if (args.checkpoints is None) == (args.run_dir is None or args.last is None):
        raise UserError("give either --run-dir DIR --last N, or --checkpoints A.pt B.pt ...")
    paths = args.checkpoints or last_epoch_checkpoints(args.run_dir, args.last)
    out = args.out or (args.run_dir / "avg.pt" if args.run_dir else None)
    if out is None:
        raise UserError("--out is needed with --checkpoints")
    print(write_average(paths, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
