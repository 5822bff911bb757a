"""Batched inference over a dataset, scoring and the per-utterance report."""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections import Counter
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr.data import BucketBatchSampler, UtteranceDataset, WaveBatch, collate, collate_waves
from asr.decode import Decoder, Hypothesis
from asr.features import LogMel
from asr.io import atomic_open
from asr.metrics import ErrorCounts, char_errors, word_errors


@dataclass
class EvalResult:
    wer: float  # fraction
    cer: float  # fraction
    loss: float  # mean CTC loss per utterance
    rows: list[dict]  # per-utterance report rows, in manifest order


@torch.no_grad()
def infer(model, ds: UtteranceDataset, decoder: Decoder, device: torch.device, max_frames: int = 40000,
          num_workers: int = 0, progress: bool = False, precision: torch.dtype | None = None,
          logmel: LogMel | None = None, noise_seed: int = 0):
    """Decode every utterance; returns ({id: Hypothesis}, summed CTC loss).

    With ``logmel`` (a LogMel on ``device``) and a dataset without its feature cache, the loader hands over
    waveforms and the log-mels of each batch are computed on ``device``, as training does (data.features_on).
    With ``ds.noise`` (a NoiseMixer) or ``ds.rir`` (a Reverb) each utterance gets the noise or room drawn from its
    id and ``noise_seed``: the same whatever the batching, the workers or the model.
    """
    model.eval()
    waves = logmel is not None and ds.cache is None
    ds.waveforms = waves
    batches = list(BucketBatchSampler([ds.num_frames(i) for i in range(len(ds))], max_frames, shuffle=False))
    if ds.noise is not None or ds.rir is not None:
        batches = [[(i, 1.0, utterance_seed(ds.utts[i].id, noise_seed)) for i in b] for b in batches]
    loader = DataLoader(ds, batch_sampler=batches, collate_fn=collate_waves if waves else collate,
                        num_workers=num_workers, pin_memory=waves and device.type == "cuda")
    ctc = torch.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    hyps: dict[str, Hypothesis] = {}
    pending = {}  # utterance id -> future, from a decoder that searches in other processes (ParallelBeamDecoder)
    loss = 0.0
    for batch in tqdm(loader, desc="decode", unit="batch", disable=not progress, file=sys.stderr):
        if isinstance(batch, WaveBatch):
            batch = batch.featurize(logmel)
        batch = batch.to(device)
        with torch.autocast(device.type, dtype=precision or torch.float32, enabled=precision is not None):
            log_probs, out_lengths = model(batch.features, batch.feature_lengths.to(device))
        loss += float(ctc(log_probs.transpose(0, 1), batch.targets, out_lengths, batch.target_lengths))
        if hasattr(decoder, "submit"):  # the model runs on the next batch while the workers search this one
            pending.update(zip(batch.ids, decoder.submit(log_probs.float().cpu(), out_lengths.cpu())))
        else:
            hyps.update(zip(batch.ids, decoder.decode(log_probs.float().cpu(), out_lengths.cpu())))
    for uid, future in tqdm(pending.items(), desc="beam search", unit="utt", disable=not progress or not pending,
                            file=sys.stderr):
        hyps[uid] = future.result()
    return hyps, loss


def utterance_seed(utt_id: str, seed: int = 0) -> int:
    """A 32-bit seed from an utterance id (CRC-32: the same in every process and Python version)."""
    return zlib.crc32(f"{seed}:{utt_id}".encode())


@torch.no_grad()
def utterance_log_probs(model, ds: UtteranceDataset, device: torch.device, max_frames: int = 40000,
                        progress: bool = False) -> dict[str, torch.Tensor]:
    """Run the model once: {utterance id: (T', V) float32 CPU log-probs}, to decode many times (LM tuning)."""
    model.eval()
    sampler = BucketBatchSampler([ds.num_frames(i) for i in range(len(ds))], max_frames, shuffle=False)
    out: dict[str, torch.Tensor] = {}
    for batch in tqdm(DataLoader(ds, batch_sampler=sampler, collate_fn=collate), desc="log-probs", unit="batch",
                      disable=not progress, file=sys.stderr):
        log_probs, lengths = model(batch.features.to(device), batch.feature_lengths.to(device))
        for uid, lp, n in zip(batch.ids, log_probs.float().cpu(), lengths.tolist()):
            out[uid] = lp[:n].clone()  # (T, V) -> (T', V): this utterance's frames only
    return out


def evaluate(model, ds: UtteranceDataset, decoder: Decoder, device: torch.device, **kw) -> EvalResult:
    hyps, loss = infer(model, ds, decoder, device, **kw)
    return score(ds, hyps, loss)


def score(ds: UtteranceDataset, hyps: dict[str, Hypothesis], loss: float = 0.0) -> EvalResult:
    """WER, CER and report rows of hypotheses ({id: Hypothesis}) against the dataset's references."""
    words, chars = ErrorCounts(), ErrorCounts()
    rows = []
    for utt, ref in zip(ds.utts, ds.texts):
        hyp = hyps[utt.id].text
        w, c = word_errors(ref, hyp), char_errors(ref, hyp)
        words += w
        chars += c
        rows.append({"id": utt.id, "ref": ref, "hyp": hyp, "word_errors": w.errors, "ref_words": w.ref_len,
                     "sub": w.substitutions, "del": w.deletions, "ins": w.insertions,
                     "char_errors": c.errors, "ref_chars": c.ref_len})
    return EvalResult(words.rate, chars.rate, loss / max(len(ds), 1), rows)


def speaker_of(utt_id: str) -> str:
    """The speaker of a LibriSpeech-style id ``SPK-CH-UTT``: the part before the first "-"."""
    return utt_id.split("-", 1)[0]


def by_speaker(rows: list[dict]) -> list[dict]:
    """Report rows -> one row per speaker (utterances, words, errors, WER and CER as fractions), worst WER first."""
    groups: dict[str, dict] = {}
    for r in rows:
        spk = speaker_of(r["id"])
        g = groups.setdefault(spk, {"speaker": spk, "utterances": 0, "ref_words": 0, "word_errors": 0,
                                    "ref_chars": 0, "char_errors": 0})
        g["utterances"] += 1
        for k in ("ref_words", "word_errors", "ref_chars", "char_errors"):
            g[k] += r[k]
    for g in groups.values():
        g["wer"] = g["word_errors"] / max(g["ref_words"], 1)
        g["cer"] = g["char_errors"] / max(g["ref_chars"], 1)
    return sorted(groups.values(), key=lambda g: (-g["wer"], g["speaker"]))


def top_errors(rows: list[dict], n: int) -> dict[str, list[tuple[str, int]]]:
    """Report rows -> the ``n`` most frequent word substitutions ("ref -> hyp"), deletions and insertions
    over all utterances, word by word, with their counts, most frequent first (ties alphabetical). The
    alignments are jiwer's, so the counts add up to the report's ``sub``, ``del`` and ``ins``."""
    import jiwer

    scored = [r for r in rows if r["ref"].split()]  # jiwer refuses an empty reference
    counts = {"substitutions": Counter(), "deletions": Counter(), "insertions": Counter()}
    if scored:
        out = jiwer.process_words([r["ref"] for r in scored], [r["hyp"] for r in scored])
        for ref, hyp, chunks in zip(out.references, out.hypotheses, out.alignments):
            for c in chunks:
                if c.type == "substitute":  # a chunk of equal length on both sides
                    counts["substitutions"].update(f"{a} -> {b}" for a, b in zip(
                        ref[c.ref_start_idx:c.ref_end_idx], hyp[c.hyp_start_idx:c.hyp_end_idx]))
                elif c.type == "delete":
                    counts["deletions"].update(ref[c.ref_start_idx:c.ref_end_idx])
                elif c.type == "insert":
                    counts["insertions"].update(hyp[c.hyp_start_idx:c.hyp_end_idx])
    return {k: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n] for k, c in counts.items()}


def write_report(path: str | os.PathLike, result: EvalResult) -> None:
    """Per-utterance JSONL, worst first, written atomically."""
    rows = sorted(result.rows, key=lambda r: (-r["word_errors"], r["id"]))
    with atomic_open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
