"""The ``asr`` command: synth-corpus, prepare, train, eval, transcribe.

User errors print one line, ``error: ...``, and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asr.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr", description="BiLSTM-CTC speech recognition: train, evaluate, transcribe.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("synth-corpus", help="make the embedded default corpus with espeak-ng (no download)")
    s.add_argument("--out", required=True, type=Path, help="output folder; the corpus goes to OUT/LibriSpeech/")
    s.add_argument("--hours", type=float, default=None, help="hours of training audio (default from SynthConfig)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--jobs", type=int, default=None, help="parallel espeak-ng processes")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("prepare", help="read a corpus into JSONL manifests")
    s.add_argument("corpus", choices=["librispeech"])
    s.add_argument("--root", required=True, type=Path, help="folder holding LibriSpeech/ (or LibriSpeech/ itself)")
    s.add_argument("--subsets", required=True, help="comma-separated, e.g. train-clean-100,dev-clean")
    s.add_argument("--out", required=True, type=Path, help="manifests go to OUT/SUBSET.jsonl")
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
    s.add_argument("--manifest", required=True, type=Path, help="JSONL manifest")
    s.add_argument("--report", type=Path, default=None,
                   help="per-utterance JSONL report (default: next to the model, eval-MANIFEST.jsonl)")
    _decoder_args(s)
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("transcribe", help="print FILE<TAB>TEXT for each audio file")
    s.add_argument("--model", required=True, type=Path)
    s.add_argument("files", nargs="+", type=Path)
    s.add_argument("--format", choices=["txt", "json"], default="txt")
    _decoder_args(s)
    s.set_defaults(func=cmd_transcribe)
    return p


def _decoder_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--decoder", choices=["greedy", "beam"], default="greedy")
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")


def cmd_synth(args, _extra) -> int:
    from dataclasses import replace

    from asr.corpus.synth import SynthConfig, synth_corpus

    cfg = SynthConfig(seed=args.seed)
    if args.hours is not None:
        cfg = replace(cfg, hours=args.hours)
    if args.jobs is not None:
        cfg = replace(cfg, jobs=args.jobs)
    summary = synth_corpus(args.out, cfg)
    print(json.dumps(summary, indent=1, default=str))
    return 0


def cmd_prepare(args, _extra) -> int:
    from asr.corpus.librispeech import prepare_librispeech

    subsets = [s for s in args.subsets.split(",") if s]
    for subset, path in prepare_librispeech(args.root, subsets, args.out, strict=args.strict).items():
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
    import torch

    from asr.checkpoint import load_model
    from asr.config import DecoderConfig
    from asr.data import UtteranceDataset
    from asr.decode import build_decoder
    from asr.evaluate import evaluate, write_report
    from asr.features import LogMel
    from asr.manifest import read_manifest

    device = torch.device(args.device)
    model, tok, cfg = load_model(args.model, device)
    utts = read_manifest(args.manifest)
    ds = UtteranceDataset(utts, LogMel(cfg.features), tok)
    decoder = build_decoder(DecoderConfig(type=args.decoder), tok)
    result = evaluate(model, ds, decoder, device, progress=True)
    report = args.report or args.model.parent / f"eval-{args.manifest.stem}.jsonl"
    write_report(report, result)
    print(f"WER {100 * result.wer:.2f}")
    print(f"CER {100 * result.cer:.2f}")
    print(f"utterances {len(ds)}; report {report}", file=sys.stderr)
    return 0


def cmd_transcribe(args, _extra) -> int:
    from asr.config import DecoderConfig
    from asr.transcribe import Recognizer

    rec = Recognizer(args.model, DecoderConfig(type=args.decoder), device=args.device)
    failed = []
    for f in args.files:
        try:
            t = rec.transcribe(f)
        except UserError as e:
            failed.append(str(e))
            print(f"error: {e}", file=sys.stderr)
            continue
        if args.format == "json":
            print(json.dumps({"file": str(f), "text": t.text, "duration": round(t.duration, 3)}), flush=True)
        else:
            print(f"{f}\t{t.text}", flush=True)
    if failed:
        print(f"error: {len(failed)} of {len(args.files)} file(s) failed (listed above)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
