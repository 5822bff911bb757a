"""Benchmark 7 (CUDA only): ``asr train`` itself on FLAC files: does the recipe's data path keep the GPU busy?

``bench_gpu`` times ``_step`` on synthetic features held in memory. This one runs the training loop as
``recipes/librispeech/run.sh`` does, on FLAC files of LibriSpeech-like durations (speech-like noise, 16-bit,
16 kHz, written in parallel into the scratch folder): ``conf/data/librispeech_100.yaml`` (100k-frame batches,
loader workers that only decode, log-mels of each batch on the GPU, a multiple of 8 utterances per batch, at
most 128) and ``conf/model/librispeech_100.yaml`` (bf16; ``rnn_impl=auto`` takes flip, which cuDNN runs as its
persistent kernel on such batches), one epoch, with the config's 8 loader workers and with 2; then with 8 and
the settings before (any number of utterances, cuDNN's packed LSTM).

Figures: the epoch's audio over its wall time (worker start-up and the first batch's wait included), and
the median per-step rate of ``train.csv`` after the first 3 steps. Reference, measured in the same run:
the same model, precision, LSTM and batch cap on synthetic features in memory (``bench_train.run_ours``, no
decoding, no log-mels). A ratio near 1 means the loader keeps the GPU busy.
"""

from __future__ import annotations

import csv
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from common import TRAIN_CLEAN_100_S, Context, log, model_flops_per_frame, rnd, run_on_cuda, target, write_noise_flac

WORKERS = (8, 2)  # conf/data/librispeech_100.yaml's num_workers, and fewer
# the recipe's settings before batches came in multiples of 8 utterances (cuDNN's persistent kernel): one more run
BEFORE, BEFORE_OVERRIDES = "before", ["data.batch_multiple=1", "data.max_utts=0", "model.rnn_impl=packed"]


def run(ctx: Context) -> dict:
    return run_on_cuda(ctx, "gpu_e2e", "end-to-end GPU training",
                       lambda save: measure(torch.device("cuda"), ctx.quick, ctx.work / "gpu-e2e", save=save))


def make_corpus(work: Path, n: int, scale: float) -> tuple[Path, Path, float]:
    """``n`` FLAC files of LibriSpeech-like durations and texts; train.jsonl (all) and dev.jsonl (16 of them).
    Kept in ``work`` and reused when its manifests are there."""
    from bench_train import make_pool

    from asr.manifest import Utterance, read_manifest, write_manifest

    train_m, dev_m = work / "train.jsonl", work / "dev.jsonl"
    if not (train_m.is_file() and dev_m.is_file() and len(read_manifest(train_m)) == n):
        pool = make_pool("librispeech", n, seed=2, scale=scale)
        (work / "flac").mkdir(parents=True, exist_ok=True)
        paths = [str(work / "flac" / f"e2e-{i:05d}.flac") for i in range(n)]
        with ProcessPoolExecutor(max(1, os.cpu_count() or 1)) as ex:
            list(ex.map(write_noise_flac, paths, pool.durations, range(n), chunksize=16))
        utts = [Utterance(f"e2e-{i:05d}", p, round(d, 3), t)
                for i, (p, d, t) in enumerate(zip(paths, pool.durations, pool.texts))]
        write_manifest(dev_m, utts[:16])
        write_manifest(train_m, utts)  # last: its presence with n lines marks a complete corpus
    audio_s = sum(u.duration for u in read_manifest(train_m))
    return train_m, dev_m, audio_s


def train_epoch(overrides: list[str]) -> dict:
    """One epoch of ``asr.train.train`` (plus its dev pass); figures from its train.csv."""
    from asr.config import compose
    from asr.train import train

    t = time.perf_counter()
    run_dir = train(compose(overrides))
    wall = time.perf_counter() - t
    rows = list(csv.DictReader(open(run_dir / "train.csv")))
    rates = [float(r["audio_s_per_s"]) for r in rows[3:]] or [float(r["audio_s_per_s"]) for r in rows]
    return {"steps": len(rows), "epoch_s": float(rows[-1]["time"]),
            "median_step_audio_per_s": rnd(statistics.median(rates)), "train_call_s": rnd(wall)}


def measure(device: torch.device, small: bool, work: Path, save=lambda part: None) -> dict:
    """The measurements; ``small`` (or a CPU ``device``, for a dry run of this code) uses tiny sizes."""
    from bench_train import make_pool, run_ours, train_config

    from asr.config import FeatureConfig, compose
    from asr.stats import compute_stats, save_stats

    cuda = device.type == "cuda"
    tiny = small or not cuda
    model = "tiny" if tiny else "librispeech_100"
    recipe = compose(["data=librispeech_100"]).data
    cap = 2000 if tiny else recipe.max_frames  # the recipe's: 100k frames
    n = 24 if tiny else 6000  # ~20 h of audio on the GPU
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    train_m, dev_m, audio_s = make_corpus(work, n, 0.25 if tiny else 1.0)
    log(f"  corpus: {n} FLAC files, {audio_s / 3600:.2f} h, ready in {time.perf_counter() - t:.1f} s")
    stats = work / "stats.json"
    save_stats(stats, compute_stats(train_m, FeatureConfig(), max_utts=64, workers=0 if tiny else 8, progress=False))
    out = {"model": model, "max_frames": cap, "audio_s": rnd(audio_s), "utterances": n}

    # reference: the same configuration on synthetic features in memory
    cfg = train_config(model)
    cfg.data.batch_multiple, cfg.data.max_utts = recipe.batch_multiple, recipe.max_utts  # flip, persistent kernel
    per_frame = model_flops_per_frame(cfg.model.hidden, cfg.model.layers, cfg.model.conv_channels,
                                      subsampling=cfg.model.subsampling)["total"]
    amp = torch.bfloat16 if cuda else None
    pool = make_pool("librispeech", 16 if tiny else 1200, seed=0, scale=0.25 if tiny else 1.0)
    ref = run_ours(cfg, pool, {"max_frames": cap, "steps": 2 if tiny else 8, "budget_s": 5 if tiny else 60},
                   per_frame, device, amp)
    out["synthetic_features"] = {k: ref[k] for k in ("audio_per_s", "audio_per_s_median_step", "steps")}
    log(f"  synthetic features in memory, {cfg.model.rnn_impl}, {'bf16' if amp else 'fp32'}, cap {cap:,}: "
        f"{ref['audio_per_s']:,.0f} audio s/s")
    save(dict(out))
    runs = []
    for workers, before in [(2, False)] if tiny else [(w, False) for w in WORKERS] + [(WORKERS[0], True)]:
        overrides = [f"model={model}", "data=librispeech_100", f"data.train_manifest={train_m}",
                     f"data.dev_manifest={dev_m}", f"data.stats={stats}", f"data.num_workers={workers}",
                     f"data.max_frames={cap}", "optim.epochs=1", "resume=false",
                     f"run_dir={work / ('run-%d%s' % (workers, '-' + BEFORE if before else ''))}",
                     f"device={device.type}"]
        row = {"num_workers": workers, **({"settings": BEFORE} if before else {}),
               **train_epoch(overrides + (BEFORE_OVERRIDES if before else []))}
        row["epoch_audio_per_s"] = rnd(audio_s / row["epoch_s"])
        row["epoch_vs_synthetic"] = rnd(row["epoch_audio_per_s"] / ref["audio_per_s"])
        row["median_step_vs_synthetic"] = rnd(row["median_step_audio_per_s"] / ref["audio_per_s_median_step"])
        runs.append(row)
        label = f"{workers} loader workers" + (f", settings {BEFORE}" if before else "")
        log(f"  asr train, {label}: epoch of {audio_s / 3600:.2f} h in {row['epoch_s']:.1f} s = "
            f"{row['epoch_audio_per_s']:,.0f} audio s/s ({row['epoch_vs_synthetic']:.2f}x synthetic features), "
            f"median step {row['median_step_audio_per_s']:,.0f} ({row['median_step_vs_synthetic']:.2f}x)")
        save({**out, "runs": runs})
    out["runs"] = runs
    full = runs[0]
    out["train_clean_100_epoch_min"] = rnd(TRAIN_CLEAN_100_S / full["epoch_audio_per_s"] / 60)
    out["targets"] = [
        target(f"asr train epoch rate with {full['num_workers']} workers vs synthetic features in memory",
               full["epoch_vs_synthetic"], 0.9, True, "x"),
        target("train-clean-100 epoch (100.6 h) at asr train's epoch rate, recipe settings",
               out["train_clean_100_epoch_min"], 2.0, False, " min")]
    return out
