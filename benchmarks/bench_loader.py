"""Benchmark 5: data loading without the feature cache: FLAC decode + log-mel per second, per loader worker.

``asr.data.UtteranceDataset`` with no cache (what the LibriSpeech recipe uses: ``cache_features:
false``) over the shared LibriSpeech sample's FLAC files repeated (or synthesized FLACs when
the sample is absent). Measured in this process with one torch thread (= one DataLoader worker),
split into decode and features, then through a real DataLoader with 2 workers and our collate.
Set against what a training step consumes: our CPU training rate from the train benchmark of
this run (or the last train.json), and the projected ~10,000 audio s/s of the LibriSpeech model
on one H100: how many workers each needs.
"""

from __future__ import annotations

import json
import math
import time

import soundfile as sf
from torch.utils.data import DataLoader

from common import (H100_AUDIO_PER_S, Context, best_time, librispeech_flacs, load_snapshot, log, machine_info, rnd,
                    target, threads, write_noise_flac, write_result)


def _flacs(ctx: Context) -> tuple[list, str]:
    files = librispeech_flacs()
    if files:
        return files, f"{len(files)} LibriSpeech sample FLAC files, repeated"
    d = ctx.work / "flac"
    d.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(5):
        f = d / f"noise-{i}.flac"
        if not f.is_file():
            write_noise_flac(f, 12.0 + i, seed=i)
        files.append(f)
    return files, "5 synthesized 16-bit FLAC files (LibriSpeech sample absent), repeated"


def _noise_dir(ctx: Context):
    """Ten 5-second noise recordings (16-bit FLAC), as a data.noise folder."""
    d = ctx.work / "noise"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(10):
        if not (d / f"noise-{i}.flac").is_file():
            write_noise_flac(d / f"noise-{i}.flac", 5.0, seed=100 + i)
    return d


def _train_rates(ctx: Context) -> dict:
    """Our CPU training throughput per model/mix: this run's train benchmark, else the last train.json."""
    from bench_train import ours_audio_per_s

    if "train" in ctx.results:
        return ours_audio_per_s(ctx.results["train"])
    path = ctx.out / "train.json"
    if path.is_file():
        return ours_audio_per_s(json.loads(path.read_text()))
    return {}


def run(ctx: Context) -> dict:
    from asr.audio import load_audio
    from asr.config import FeatureConfig
    from asr.data import BucketBatchSampler, UtteranceDataset, collate
    from asr.features import LogMel
    from asr.manifest import Utterance
    from asr.corpus.noise import synth_noise
    from asr.noise import NoiseMixer, Reverb

    result = {"name": "loader", "quick": ctx.quick, "machine": machine_info(), "load_before": load_snapshot()}
    files, what = _flacs(ctx)
    repeat = 1 if ctx.quick else 8  # the files over and over: 357 s of audio with the LibriSpeech sample
    utts = []
    for r in range(repeat):
        for f in files:
            info = sf.info(str(f))
            utts.append(Utterance(f"{f.stem}-{r}", str(f), info.frames / info.samplerate, "a"))
    from asr.text import CharTokenizer

    ds = UtteranceDataset(utts, LogMel(FeatureConfig()), CharTokenizer())
    audio_s = sum(u.duration for u in utts)
    result.update({"audio": what, "utterances": len(utts), "audio_s": rnd(audio_s)})
    reps = 1 if ctx.quick else 3
    with threads(1):
        ds[0]  # warm-up: imports, mel filterbank
        wavs = [load_audio(u.audio) for u in utts]
        t_decode = best_time(lambda: [load_audio(u.audio) for u in utts], reps, warmup=0)
        t_feats = best_time(lambda: [ds.logmel(w) for w in wavs], reps, warmup=0)
        t_item = best_time(lambda: [ds[i] for i in range(len(ds))], reps, warmup=0)
        ds.waveforms = True  # data.features_on=device: workers only decode (int16 for 16-bit PCM)
        t_wave = best_time(lambda: [ds[i] for i in range(len(ds))], reps, warmup=0)
        # with data.speed_perturb=[0.9,1.0,1.1]: two utterances in three are resampled in the worker too
        speeds = (0.9, 1.0, 1.1)
        t_speed = best_time(lambda: [ds[(i, speeds[i % 3])] for i in range(len(ds))], reps, warmup=0)
        # with data.noise=DIR and data.noise_prob=1 (noise in every utterance, the most work there is): each
        # utterance gets a segment of a noise file read, mixed at a random SNR
        ds.noise = NoiseMixer(_noise_dir(ctx), prob=1.0)
        t_noise = best_time(lambda: [ds[(i, 1.0, i)] for i in range(len(ds))], reps, warmup=0)
        # with data.rir=DIR and data.rir_prob=1 instead: an impulse response read and convolved (FFT) per utterance
        ds.noise = None
        ds.rir = Reverb(synth_noise(ctx.work / "rir", ("rir",), files_per_kind=10)[0].parent, prob=1.0)
        t_rir = best_time(lambda: [ds[(i, 1.0, i)] for i in range(len(ds))], reps, warmup=0)
        ds.waveforms, ds.rir = False, None
    per_worker = audio_s / t_item
    wave_worker = audio_s / t_wave
    speed_worker = audio_s / t_speed  # audio s before perturbation, as the training rate counts it (about)
    noise_worker = audio_s / t_noise
    rir_worker = audio_s / t_rir
    # the real thing: DataLoader, 2 worker processes, bucketed batches, our collate
    sampler = BucketBatchSampler([ds.num_frames(i) for i in range(len(ds))], 8000, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler.epoch_batches(), collate_fn=collate, num_workers=2,
                        prefetch_factor=4, persistent_workers=False)
    t = time.perf_counter()
    n = sum(int(b.features.shape[0]) for b in loader)
    t_loader = time.perf_counter() - t
    assert n == len(ds)
    result.update({
        "decode_audio_per_s": rnd(audio_s / t_decode), "features_audio_per_s": rnd(audio_s / t_feats),
        "per_worker_audio_per_s": rnd(per_worker), "per_worker_waveforms_audio_per_s": rnd(wave_worker),
        "per_worker_waveforms_speed_perturb_audio_per_s": rnd(speed_worker),
        "per_worker_waveforms_noise_audio_per_s": rnd(noise_worker),
        "per_worker_waveforms_rir_audio_per_s": rnd(rir_worker),
        "decode_frac": rnd(t_decode / (t_decode + t_feats)),
        "dataloader_2_workers_audio_per_s": rnd(audio_s / t_loader),
        "dataloader_note": "includes starting 2 worker processes",
    })
    log(f"  one worker (1 thread), {audio_s:.0f} s of FLAC: {per_worker:,.0f} audio s/s per worker "
        f"(decode {audio_s / t_decode:,.0f}, log-mel {audio_s / t_feats:,.0f} audio s/s; decode "
        f"{t_decode / (t_decode + t_feats):.0%} of the time); DataLoader with 2 workers + collate: "
        f"{audio_s / t_loader:,.0f} audio s/s (with worker start-up); waveforms only, for log-mels on the "
        f"GPU (data.features_on=device): {wave_worker:,.0f} audio s/s per worker, {speed_worker:,.0f} with speed "
        f"perturbation (0.9/1.0/1.1), {noise_worker:,.0f} with noise in every utterance (data.noise), "
        f"{rir_worker:,.0f} with reverberation in every utterance (data.rir)")
    need = {}
    for key, rate in _train_rates(ctx).items():
        need[f"CPU training {key}"] = {"consumes_audio_per_s": rate, "workers": rnd(rate / per_worker),
                                       "workers_ceil": math.ceil(rate / per_worker)}
    need["H100 LibriSpeech model (projected)"] = {"consumes_audio_per_s": H100_AUDIO_PER_S,
                                                  "workers": rnd(H100_AUDIO_PER_S / per_worker),
                                                  "workers_ceil": math.ceil(H100_AUDIO_PER_S / per_worker)}
    need["H100 LibriSpeech model (projected), log-mels on the GPU"] = {
        "consumes_audio_per_s": H100_AUDIO_PER_S, "workers": rnd(H100_AUDIO_PER_S / wave_worker),
        "workers_ceil": math.ceil(H100_AUDIO_PER_S / wave_worker)}
    need["H100 LibriSpeech model (projected), log-mels on the GPU, speed perturbation"] = {
        "consumes_audio_per_s": H100_AUDIO_PER_S, "workers": rnd(H100_AUDIO_PER_S / speed_worker),
        "workers_ceil": math.ceil(H100_AUDIO_PER_S / speed_worker)}
    need["H100 LibriSpeech model (projected), log-mels on the GPU, noise in every utterance"] = {
        "consumes_audio_per_s": H100_AUDIO_PER_S, "workers": rnd(H100_AUDIO_PER_S / noise_worker),
        "workers_ceil": math.ceil(H100_AUDIO_PER_S / noise_worker)}
    result["workers_needed"] = need
    for k, v in need.items():
        log(f"  {k}: consumes {v['consumes_audio_per_s']:,.0f} audio s/s -> {v['workers']} workers "
            f"({v['workers_ceil']} at least)")
    h100 = need["H100 LibriSpeech model (projected), log-mels on the GPU"]["workers_ceil"]
    result["targets"] = [target("loader workers to feed an H100 (LibriSpeech model, ~10,000 audio s/s, log-mels on "
                                "the GPU)", h100, 16,
                                False, " workers")]
    result["load_after"] = load_snapshot()
    write_result(ctx, "loader", result)
    return result
