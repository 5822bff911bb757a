#!/usr/bin/env python
"""Tune the LM weight and word score of beam search on a dev manifest; write the best into a decoder YAML.

The model runs once (log-probs kept in memory); each (lm_weight, word_score) point only
re-runs the beam search, with the LM loaded once. Example:

    .venv/bin/python tools/tune_lm.py --model runs/demo/best.pt --manifest data/demo/dev-synth.jsonl \\
        --lm data/lm/3gram.arpa --out conf/decoder/beam_tuned.yaml
    asr eval --model runs/demo/best.pt --manifest data/demo/test-synth.jsonl \\
        --decoder-config conf/decoder/beam_tuned.yaml

--search grid tries every pair of --lm-weights x --word-scores; --search coordinate (default)
starts in the middle of both lists and moves along one axis at a time while WER improves,
which needs far fewer decodes. Ties on WER go to the lower CER, then to the smaller weight.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from asr.beam import BeamDecoder
from asr.checkpoint import load_model
from asr.config import DecoderConfig
from asr.data import UtteranceDataset
from asr.errors import UserError
from asr.evaluate import score, utterance_log_probs
from asr.features import LogMel
from asr.io import atomic_write_text
from asr.manifest import read_manifest

# multiplies log10 LM probabilities (character LMs: 2.5 on the demo)
DEFAULT_LM_WEIGHTS = "0,0.25,0.5,0.75,1,1.5,2,2.5,3"
DEFAULT_WORD_SCORES = "-2,-1,0,1,2,3"  # natural-log bonus per word


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="checkpoint, e.g. runs/demo/best.pt")
    p.add_argument("--manifest", required=True, type=Path, help="dev JSONL manifest (not the test set)")
    p.add_argument("--lm", required=True, type=Path, help="KenLM ARPA or binary (asr lm build)")
    p.add_argument("--lexicon", type=Path, default=None,
                   help="lexicon for closed-vocabulary search (default: a lexicon of the LM's words)")
    p.add_argument("--lexicon-free", action="store_true", help="open-vocabulary search: any spelling can come out")
    p.add_argument("--out", type=Path, default=Path("conf/decoder/beam_tuned.yaml"), help="decoder YAML to write")
    p.add_argument("--lm-weights", default=DEFAULT_LM_WEIGHTS, help=f"comma-separated (default {DEFAULT_LM_WEIGHTS})")
    p.add_argument("--word-scores", default=DEFAULT_WORD_SCORES,
                   help=f"comma-separated (default {DEFAULT_WORD_SCORES})")
    p.add_argument("--search", choices=["coordinate", "grid"], default="coordinate")
    p.add_argument("--beam-size", type=int, default=50, help="hypotheses kept per frame")
    p.add_argument("--beam-size-token", type=int, default=8, help="tokens tried per frame (default 8; 0: all)")
    p.add_argument("--limit", type=int, default=None,
                   help="use N utterances spread evenly over the manifest (every k-th: all its subsets and speakers; "
                        "faster, noisier)")
    p.add_argument("--device", default="cpu", help="device for the model pass (decoding runs on the CPU)")
    return p.parse_args(argv)


def floats(text: str, flag: str) -> list[float]:
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 0,0.5,1") from None
    if not values:
        raise UserError(f"{flag}: no values")
    return values


class Trials:
    """Decode the dev set at (lm_weight, word_score) points, each once; remember every result."""

    def __init__(self, decoder: BeamDecoder, ds: UtteranceDataset, log_probs: dict[str, torch.Tensor]):
        self.decoder, self.ds, self.log_probs = decoder, ds, log_probs
        self.results: dict[tuple[float, float], tuple[float, float, float]] = {}  # -> (WER, CER, seconds)

    def __call__(self, lm_weight: float, word_score: float) -> tuple[float, float]:
        key = (lm_weight, word_score)
        if key not in self.results:
            dec = self.decoder.reweighted(lm_weight=lm_weight, word_score=word_score)
            t0 = time.perf_counter()
            hyps = {uid: dec.decode(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]  # (T, V) -> (1, T, V)
                    for uid, lp in self.log_probs.items()}
            res = score(self.ds, hyps)
            self.results[key] = (res.wer, res.cer, time.perf_counter() - t0)
            print(f"  lm_weight {lm_weight:6.2f}  word_score {word_score:6.2f}  WER {100 * res.wer:6.2f}  "
                  f"CER {100 * res.cer:6.2f}", file=sys.stderr, flush=True)
        return self.results[key][:2]

    def best(self) -> tuple[float, float]:
        return min(self.results, key=lambda k: (*self.results[k][:2], k[0], abs(k[1])))


def grid_search(trials: Trials, weights: list[float], scores: list[float]) -> None:
    for w in weights:
        for s in scores:
            trials(w, s)


def coordinate_search(trials: Trials, weights: list[float], scores: list[float], rounds: int = 4) -> None:
    """Line searches along lm_weight then word_score from the middle of both lists, until nothing improves."""
    point = (weights[len(weights) // 2], scores[len(scores) // 2])
    for _ in range(rounds):
        start = point
        for w in weights:
            trials(w, point[1])
        point = trials.best()
        for s in scores:
            trials(point[0], s)
        point = trials.best()
        if point == start:
            break


def edge_hints(best: tuple[float, float], weights: list[float], scores: list[float]) -> list[str]:
    """What to widen when the best point sits at the end of a searched list: the optimum may lie beyond it (no hint
    for lm_weight at its lowest: a weight below 0 would reward unlikely words)."""
    hints = []
    for name, flag, value, grid in (("lm_weight", "--lm-weights", best[0], weights),
                                    ("word_score", "--word-scores", best[1], scores)):
        if len(grid) < 2:
            continue
        if value == grid[-1]:
            hints.append(f"{name} {value:g} is the largest tried: the best may lie above it; add larger values to "
                         f"{flag}")
        elif value == grid[0] and name == "word_score":
            hints.append(f"{name} {value:g} is the smallest tried: the best may lie below it; add smaller values to "
                         f"{flag}")
    return hints


def table(trials: Trials) -> str:
    lines = [f"{'lm_weight':>9} {'word_score':>10} {'WER %':>7} {'CER %':>7} {'s':>6}"]
    for (w, s), (wer, cer, secs) in sorted(trials.results.items()):
        lines.append(f"{w:9.2f} {s:10.2f} {100 * wer:7.2f} {100 * cer:7.2f} {secs:6.1f}")
    return "\n".join(lines)


def decoder_yaml(cfg: DecoderConfig, header: str) -> str:
    from omegaconf import OmegaConf

    body = OmegaConf.to_yaml(OmegaConf.structured(cfg))
    return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body


def main(argv=None) -> int:
    args = parse_args(argv)
    weights = floats(args.lm_weights, "--lm-weights")
    scores = floats(args.word_scores, "--word-scores")
    if args.limit is not None and args.limit < 1:  # every k-th of the manifest needs k = len // limit
        raise UserError(f"--limit {args.limit}: use 1 or more utterances")
    for flag, path in (("--lm", args.lm), ("--lexicon", args.lexicon)):  # fail before the model pass, not after
        if path is not None and not path.is_file():
            raise UserError(f"{flag} {path}: no such file")
    device = torch.device(args.device)
    model, tok, train_cfg = load_model(args.model, device)
    utts = read_manifest(args.manifest)
    if args.limit is not None and args.limit < len(utts):
        utts = utts[:: len(utts) // args.limit][: args.limit]  # evenly spread, deterministic
    base = DecoderConfig(type="beam", beam_size=args.beam_size, beam_size_token=args.beam_size_token or None,
                         lm=str(args.lm), lexicon=str(args.lexicon) if args.lexicon else None,
                         lexicon_free=args.lexicon_free)
    decoder = BeamDecoder(base, tok)  # an LM it cannot use fails here, before the model pass
    ds = UtteranceDataset(utts, LogMel(train_cfg.features), tok)
    log_probs = utterance_log_probs(model, ds, device, progress=True)
    trials = Trials(decoder, ds, log_probs)
    no_lm = trials(0.0, 0.0)  # the beam without LM scores (with the lexicon, if any): the baseline the LM must beat
    (grid_search if args.search == "grid" else coordinate_search)(trials, weights, scores)
    w, s = trials.best()
    wer, cer = trials.results[(w, s)][:2]
    report = table(trials)
    print(report)
    print(f"best: lm_weight {w} word_score {s}: WER {100 * wer:.2f} (lm_weight 0: {100 * no_lm[0]:.2f}), "
          f"CER {100 * cer:.2f}")
    for hint in edge_hints((w, s), weights, scores):
        print(f"note: {hint}", file=sys.stderr)
    header = (f"Beam search tuned by tools/tune_lm.py on {args.manifest} ({len(ds)} utterances)\n"
              f"model {args.model}; WER {100 * wer:.2f} % (lm_weight 0: {100 * no_lm[0]:.2f} %)\n"
              f"command: {' '.join(sys.argv)}\n\n{report}\n")
    best = replace(base, lm_weight=w, word_score=s)
    atomic_write_text(args.out, decoder_yaml(best, header))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
