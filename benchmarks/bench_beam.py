"""Benchmark 4: our beam search (``asr.beam.BeamDecoder``, flashlight-text) against pyctcdecode.

Same log-probabilities, same beam width, one utterance at a time on one thread, the two decoders timed in turns
(the best of 3 rounds each), WER of both (jiwer). Five pairs:

* no LM: ours lexicon-free (flashlight's ZeroLM) vs pyctcdecode without a language model;
* the same with ``beam_size_token=None`` (every token of every frame is tried; the default, 8, tries
  the 8 best of a frame: the counterpart of pyctcdecode's ``token_min_logp`` pruning);
* 3-gram LM: ours lexicon-free (the ``_WordLM`` adapter) vs pyctcdecode + kenlm, same ARPA file;
* 3-gram LM: ours with a lexicon (flashlight scores words natively; the default with an LM) vs
  pyctcdecode + kenlm;
* ours lexicon-free with a character 6-gram LM of the same text (``asr lm build --unit char``; KenLM scores
  each letter in C++) vs pyctcdecode + kenlm with the word 3-gram: two ways to let any spelling through.
  Its weights are not pyctcdecode's (they weigh letters, not words): ``CHAR_LM_WEIGHT`` and
  ``CHAR_WORD_SCORE`` were tuned on the main job's dev split (below).

LM weights are the same on both sides: pyctcdecode's ``alpha`` multiplies natural-log LM scores
and ours ``lm_weight`` multiplies log10 ones, so ``lm_weight = alpha * ln 10``; ``beta`` =
``word_score``. Each library keeps its own pruning defaults (pyctcdecode: ``token_min_logp=-5``,
``beam_prune_logp=-10``; ours: ``beam_threshold=10``, ``beam_size_token=8``), but for the lexicon-free LM pairs
pyctcdecode drops tokens at ``token_min_logp=-8``, as ours do (``lm_token_prune``; at -5 both lose up to 2 points
of WER).

Log-probabilities, two sources:

* synthetic, always: made from known sentences (the sentence grammar, other sentences than the
  LM's): each character peaks for 1-2 frames with random strength, 0-1 blank frames between,
  Gaussian noise on every logit, and 6 % of the letters replaced by a wrong one, so that greedy
  decoding makes word errors and an LM has something to fix;
* a trained model's (``--model``, else runs/demo/best.pt, when there is one) on its own test set
  (the first 100 utterances of data/demo/test-synth.jsonl), else on the LibriSpeech sample.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import torch

from common import (FRAME_S, REPO, Context, build_bench_char_lm, build_bench_lm, load_snapshot, log, machine_info,
                    rnd, target, threads, write_result)

ALPHA, BETA = 0.5, 1.5  # pyctcdecode's defaults: LM weight on natural-log scores, score per word
# tools/tune_lm.py --search grid --lm-weights 1,1.5,2,2.5,3 --word-scores=-2,-1,0,1 on data/demo/dev-synth.jsonl
# (120 utterances) with the 3 h x 7 main-job model and this benchmark's char 6-gram: 17.54 % dev WER at (2, 0),
# 2026-11-26
CHAR_LM_WEIGHT, CHAR_WORD_SCORE = 2.0, 0.0
SUB_P = 0.06  # probability that a letter's peak goes to a wrong letter


def synthetic_log_probs(n: int, seed: int) -> tuple[list[torch.Tensor], list[str]]:
    """(T, V) log-probs and reference texts for ``n`` sentences of the grammar."""
    from asr.corpus.sentences import sentence_stream
    from asr.text import CharTokenizer, normalize_text

    tok = CharTokenizer()
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    stream = sentence_stream(f"benchmark-beam-{seed}")
    letters = [i for i, t in enumerate(tok.tokens) if t.isalpha()]
    out, refs = [], []
    for _ in range(n):
        text = normalize_text(next(stream)).text
        ids = tok.encode(text)
        path = [tok.blank] * rng.randint(1, 4)
        prev = None
        for i in ids:
            if i in letters and rng.random() < SUB_P:
                i = rng.choice(letters)
            if i == prev:
                path.append(tok.blank)  # a repeat needs a blank between
            path += [i] * rng.randint(1, 2) + [tok.blank] * rng.randint(0, 1)
            prev = path[-1]
        path += [tok.blank] * rng.randint(1, 4)
        logits = torch.randn(len(path), len(tok), generator=gen)
        strength = 3.5 + 4.0 * torch.rand(len(path), generator=gen)  # some frames lose to the noise
        logits[torch.arange(len(path)), torch.tensor(path)] += strength
        out.append(logits.log_softmax(-1))
        refs.append(text)
    return out, refs


def model_log_probs(model_path: str, quick: bool) -> tuple[list[torch.Tensor], list[str], str, float] | None:
    """A trained model's log-probs on its own test set (data/demo/test-synth.jsonl, first 100) or, without it,
    on the LibriSpeech sample, and its output frame length in seconds; None when neither is there."""
    from asr.manifest import read_manifest
    from asr.text import normalize_text
    from asr.transcribe import Recognizer
    from common import librispeech_flacs, librispeech_transcripts

    manifest = REPO / "data/demo/test-synth.jsonl"
    if manifest.is_file():
        utts = read_manifest(manifest)[: 3 if quick else 100]
        pairs, where = [(u.audio, u.text) for u in utts], f"{len(utts)} utterances of {manifest.relative_to(REPO)}"
    else:
        refs = librispeech_transcripts()
        pairs = [(str(f), refs[f.stem]) for f in librispeech_flacs()[: 2 if quick else None]]
        where = f"{len(pairs)} LibriSpeech sample files"
    if not pairs:
        return None
    rec = Recognizer(model_path)
    out = [rec.transcribe(a, words=False, keep_log_probs=True).log_probs for a, _ in pairs]
    return out, [normalize_text(t).text for _, t in pairs], f"model {model_path} on {where}", rec.frame_s


def _wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    return jiwer.wer(refs, [h if h.strip() else "<empty>" for h in hyps])


def _time(decode, items) -> tuple[float, list[str]]:
    decode(items[0])  # warm-up
    t = time.perf_counter()
    hyps = [decode(x) for x in items]
    return time.perf_counter() - t, hyps


def _time_interleaved(decoders: list, items, rounds: int) -> list[tuple[float, list[str]]]:
    """Each decoder's best time over ``rounds`` rounds, the decoders taking turns within a round (in the reverse
    order every other round), and its hypotheses: this shared machine's speed drifts within seconds, so timing
    one decoder after the other would credit one with the other's slow spell."""
    best: list[tuple[float, list[str]] | None] = [None] * len(decoders)
    for r in range(rounds):
        order = range(len(decoders)) if r % 2 == 0 else reversed(range(len(decoders)))
        for i in order:
            t, hyps = _time(decoders[i], items)
            if best[i] is None or t < best[i][0]:
                best[i] = (t, hyps)
    return best


def run(ctx: Context) -> dict:
    beam = 8 if ctx.quick else 50
    rounds = 1 if ctx.quick else 3
    result = {"name": "beam", "quick": ctx.quick, "machine": machine_info(), "load_before": load_snapshot(),
              "threads": 1, "timing": f"best of {rounds} round(s), ours and pyctcdecode in turns", "sources": []}
    arpa, lexicon, words = build_bench_lm(ctx.work, 300 if ctx.quick else 20000)
    char_arpa = build_bench_char_lm(ctx.work, 300 if ctx.quick else 20000)
    result.update({"beam_width": beam, "lm": f"3-gram, {arpa.stat().st_size // 1024} kB ARPA", "alpha": ALPHA,
                   "beta": BETA, "lm_weight": rnd(ALPHA * math.log(10), 4), "word_score": BETA,
                   "char_lm": f"6-gram of characters, {char_arpa.stat().st_size // 1024} kB ARPA",
                   "char_lm_weight": CHAR_LM_WEIGHT, "char_word_score": CHAR_WORD_SCORE})
    theirs = _pyctcdecode(result, beam, arpa, words)
    sources = [synthetic_log_probs(8 if ctx.quick else 100, seed=0)
               + (f"synthetic: grammar sentences, peaked log-probs with noise and {SUB_P:.0%} wrong letters", FRAME_S)]
    model = ctx.model or (str(REPO / "runs/demo/best.pt") if (REPO / "runs/demo/best.pt").is_file() else None)
    got = model_log_probs(model, ctx.quick) if model else None
    if got is not None:
        sources.append(got)
    else:
        result["model_source_skipped"] = "no trained model (--model or runs/demo/best.pt): synthetic log-probs only"
    with threads(1):
        for items, refs, what, frame_s in sources:
            result["sources"].append(_compare(items, refs, what, frame_s, beam, arpa, lexicon, char_arpa, theirs,
                                              rounds))
    result["targets"] = []
    for src in result["sources"]:
        tag = "model" if src["log_probs"].startswith("model") else "synthetic"
        for p in src["pairs"]:
            if "speedup" in p:
                result["targets"].append(target(f"{tag}, {p['pair']}: speed over pyctcdecode, beam {beam}",
                                                p["speedup"], 3.0, True, "x"))
                result["targets"].append(target(f"{tag}, {p['pair']}: WER ours - pyctcdecode "
                                                f"(2 s.e. = {p['wer_noise_2se']})",
                                                rnd(p["ours_wer"] - p["pyctcdecode_wer"]), p["wer_noise_2se"], False))
    result["load_after"] = load_snapshot()
    write_result(ctx, "beam", result)
    return result


def _pyctcdecode(result: dict, beam: int, arpa: Path, words: list[str]) -> dict:
    """pyctcdecode decoders by LM key ("none", "lm", "lm, token_min_logp"), as far as pyctcdecode and kenlm are
    installed."""
    from asr.config import DecoderConfig
    from asr.text import CharTokenizer

    tok = CharTokenizer()
    theirs = {}
    try:
        logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
        from pyctcdecode import build_ctcdecoder
    except ImportError as e:
        result["pyctcdecode_skipped"] = f"pyctcdecode missing ({e}): pip install -r benchmarks/requirements.txt"
        return theirs
    labels = ["" if i == tok.blank else t for i, t in enumerate(tok.tokens)]
    plain = build_ctcdecoder(labels)
    theirs["none"] = lambda x: plain.decode(x.numpy(), beam_width=beam)
    try:
        import kenlm  # noqa: F401
    except ImportError as e:
        result["pyctcdecode_lm_skipped"] = f"kenlm python module missing ({e}): pip install kenlm"
        return theirs
    with_lm = build_ctcdecoder(labels, kenlm_model_path=str(arpa), unigrams=words, alpha=ALPHA, beta=BETA)
    theirs["lm"] = lambda x: with_lm.decode(x.numpy(), beam_width=beam)
    # against our lexicon-free LM searches, which drop tokens more than lm_token_prune below their frame's best:
    # pyctcdecode with the same cut (its default, -5, costs as much WER as ours at 5)
    cut = -DecoderConfig().lm_token_prune
    theirs["lm, token_min_logp"] = lambda x: with_lm.decode(x.numpy(), beam_width=beam, token_min_logp=cut)
    return theirs


def _compare(items, refs, what: str, frame_s: float, beam: int, arpa: Path, lexicon: Path, char_arpa: Path,
             theirs: dict, rounds: int) -> dict:
    from asr.beam import BeamDecoder
    from asr.config import DecoderConfig
    from asr.text import CharTokenizer

    tok = CharTokenizer()

    def ours(lm: Path | None, lex: Path | None, **kw):
        weights = {"lm_weight": ALPHA * math.log(10) if lm else 1.0, "word_score": BETA if lm else 0.0}
        cfg = DecoderConfig(type="beam", beam_size=beam, lm=str(lm) if lm else None, lexicon=str(lex) if lex else None,
                            lexicon_free=lex is None, **{**weights, **kw})
        dec = BeamDecoder(cfg, tok)
        return lambda x: dec.decode(x.unsqueeze(0), torch.tensor([x.shape[0]]))[0].text

    audio_s = sum(x.shape[0] for x in items) * frame_s
    n_words = sum(len(r.split()) for r in refs)
    greedy = _wer(refs, [" ".join(tok.decode(torch.unique_consecutive(x.argmax(-1)).tolist()).split()) for x in items])
    src = {"log_probs": what, "utterances": len(items), "audio_s": rnd(audio_s), "reference_words": n_words,
           "greedy_wer": rnd(greedy), "pairs": []}
    log(f"  {what}: {len(items)} utterances, {audio_s:.0f} s, beam {beam}; greedy WER {greedy:.1%}")
    for label, (lm, lex, kw), key in (("no LM", (None, None, {}), "none"),
                                      ("no LM, all tokens", (None, None, {"beam_size_token": None}), "none"),
                                      ("3-gram, lexicon-free", (arpa, None, {}), "lm, token_min_logp"),
                                      ("3-gram, lexicon", (arpa, lexicon, {}), "lm"),
                                      ("char 6-gram, lexicon-free", (char_arpa, None, {
                                          "lm_weight": CHAR_LM_WEIGHT, "word_score": CHAR_WORD_SCORE}),
                                       "lm, token_min_logp")):
        decode = ours(lm, lex, **kw)
        if key in theirs:  # timed in turns with pyctcdecode
            (t_ours, h_ours), (t_th, h_th) = _time_interleaved([decode, theirs[key]], items, rounds)
        else:
            ((t_ours, h_ours),) = _time_interleaved([decode], items, rounds)
        pair = {"pair": label, "ours_s": rnd(t_ours), "ours_ms_per_audio_s": rnd(1000 * t_ours / audio_s),
                "ours_wer": rnd(_wer(refs, h_ours))}
        line = f"  {label:42s} ours {pair['ours_ms_per_audio_s']:8.2f} ms/audio s, WER {pair['ours_wer']:.1%}"
        if key in theirs:
            wer_th = _wer(refs, h_th)
            se = math.sqrt(max(wer_th, 0.01) * (1 - min(wer_th, 0.99)) / n_words)  # binomial s.e. of a WER
            pair.update({"pyctcdecode_decode": key, "pyctcdecode_s": rnd(t_th),
                         "pyctcdecode_ms_per_audio_s": rnd(1000 * t_th / audio_s),
                         "pyctcdecode_wer": rnd(wer_th), "speedup": rnd(t_th / t_ours),
                         "wer_noise_2se": rnd(2 * se), "wer_agrees": abs(_wer(refs, h_ours) - wer_th) <= 2 * se})
            line += (f" | pyctcdecode {pair['pyctcdecode_ms_per_audio_s']:8.2f} ms/audio s, WER {wer_th:.1%} | "
                     f"ratio {pair['speedup']:.1f}x")
        else:
            line += " | pyctcdecode not measured"
        log(line)
        src["pairs"].append(pair)
    return src
