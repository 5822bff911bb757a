"""Benchmark 6 (CUDA only): training throughput of the LibriSpeech model on one GPU.

``python benchmarks/run.py --only gpu`` on a CUDA machine; without one it writes a result that
says so and measures nothing. Our ``_step`` on bucketed batches of cached synthetic features
(LibriSpeech-like durations), for every combination of

* precision: fp32 and bf16 autocast (``precision=auto`` picks bf16 on a GPU);
* LSTM implementation: ``packed`` (cuDNN on packed sequences, the GPU default) and ``flip``
  (two padded unidirectional passes, the CPU default);
* batch cap ``data.max_frames``: 50k, 100k (conf/data/librispeech_100.yaml) and 200k frames;

then bf16 with both LSTMs at 400k and 800k frames, and the 960 h model (5x1024) in bf16 at 200k, 400k and 800k;

with audio seconds per second, peak GPU memory, and MFU against the matmul rates measured in
the same run: fp32 without TF32, TF32, and bf16 (torch.matmul of 8192 x 8192 matrices). Also the
log-mel rate of ``WaveBatch.featurize`` on the GPU (``data.features_on=device``, the default there
without the feature cache) against ``LogMel`` per utterance on one CPU thread, as a loader worker runs it.
Targets (issues 3 and 5): a train-clean-100 epoch projected at 2 minutes or less from the best throughput,
and 30 % or more of the measured matmul rate.
"""

from __future__ import annotations

import random

import torch

from common import (TRAIN_CLEAN_100_S, Context, best_time, librispeech_durations, log, matmul_gflops,
                    model_flops_per_frame, rnd, run_on_cuda, target, threads)

from asr.config import FeatureConfig  # noqa: E402  (common put the repository on sys.path)
from asr.data import WaveBatch  # noqa: E402
from asr.features import LogMel  # noqa: E402

CAPS = (50_000, 100_000, 200_000)  # data.max_frames: padded feature frames per optimizer step
BIG_CAPS = (400_000, 800_000)  # larger batches in bf16, both models: longer matmuls in the recurrence, higher MFU


def run(ctx: Context) -> dict:
    return run_on_cuda(ctx, "gpu", "GPU throughput", lambda save: measure(torch.device("cuda"), ctx.quick, save=save))


def measure(device: torch.device, small: bool, save=lambda part: None) -> dict:
    """The measurements; ``small`` (or a CPU ``device``, for a dry run of this code) uses tiny sizes.
    ``save`` gets what is measured so far after each step (the log-mel rate first: it takes seconds)."""
    from bench_train import make_pool, run_ours, train_config

    cuda = device.type == "cuda"
    tiny = small or not cuda
    size = 1024 if tiny else 8192
    rates = {}
    old = torch.backends.cuda.matmul.allow_tf32
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        rates[name] = rnd(matmul_gflops(torch.get_num_threads(), size, reps=3 if tiny else 10, dtype=dtype,
                                        device=str(device)))
    torch.backends.cuda.matmul.allow_tf32 = old
    log("  matmul rates (GFLOP/s): " + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items()))
    out_features = measure_features(device, tiny)
    model_name = "tiny" if tiny else "librispeech_100"
    cfg = train_config(model_name)
    m = cfg.model
    per_frame = model_flops_per_frame(m.hidden, m.layers, m.conv_channels, subsampling=m.subsampling)["total"]
    caps = (400, 800) if tiny else CAPS
    pool = make_pool("librispeech", 16 if tiny else 1200, seed=0, scale=0.25 if tiny else 1.0)

    def one(model_cfg, model_per_frame: float, pool, precision: str, impl: str, cap: int) -> dict:
        """One configuration timed: a row of figures, or of an out-of-memory error."""
        amp = torch.bfloat16 if precision == "bf16" else None
        model_cfg.model.rnn_impl = impl
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        spec = {"max_frames": cap, "steps": 2 if tiny else 6, "budget_s": 5 if tiny else 60}
        row = {"precision": precision, "rnn_impl": impl, "max_frames": cap}
        try:
            row.update(run_ours(model_cfg, pool, spec, model_per_frame, device, amp))
        except torch.cuda.OutOfMemoryError as e:
            row["error"] = f"out of memory: {str(e).splitlines()[0]}"
            log(f"  {precision} {impl:6s} cap {cap:>7,}: out of memory")
            return row
        if cuda:
            row["peak_mem_gb"] = rnd(torch.cuda.max_memory_allocated() / 1e9)
        ref_rate = rates["bf16"] if amp else rates["tf32"]
        row["mfu"] = rnd(row["useful_gflop_per_s"] / ref_rate)
        row["mfu_vs_fp32_no_tf32"] = rnd(row["useful_gflop_per_s"] / rates["fp32"])
        log(f"  {precision} {impl:6s} cap {cap:>7,}: {row['audio_per_s']:>9,.0f} audio s/s, MFU {row['mfu']:.0%} "
            f"(vs {'bf16' if amp else 'tf32'} matmul), padding {row['padding_frac']:.0%}, data "
            f"{row['data_frac']:.0%} of the wall time" + (f", peak {row['peak_mem_gb']} GB" if cuda else ""))
        return row

    # the 960 h model (5x1024, ~118 M parameters): the size the guide's H100 figures are for
    big_name = "tiny" if tiny else "librispeech_960"
    big = train_config(big_name)
    big_per_frame = model_flops_per_frame(big.model.hidden, big.model.layers, big.model.conv_channels,
                                          subsampling=big.model.subsampling)["total"]
    runs: list[dict] = []
    runs_960: list[dict] = []

    def measured(model_cfg, model_per_frame: float, pool, into: list, precision: str, impl: str, cap: int) -> None:
        into.append(one(model_cfg, model_per_frame, pool, precision, impl, cap))
        save({"matmul_gflop_per_s": rates, "features": out_features, "runs": runs, "runs_960": runs_960})

    for precision in ("fp32", "bf16"):
        for impl in ("packed", "flip"):
            for cap in caps:
                measured(cfg, per_frame, pool, runs, precision, impl, cap)
    log(f"  model {big_name}:")
    for impl in ("packed", "flip"):  # bf16 at the largest cap of the sweep
        measured(big, big_per_frame, pool, runs_960, "bf16", impl, caps[-1])
    # larger batches, bf16, both models, on a pool with enough utterances for 6 steps of the largest cap
    big_caps = (1_600,) if tiny else BIG_CAPS
    big_pool = make_pool("librispeech", 48 if tiny else 4000, seed=1, scale=0.25 if tiny else 1.0)
    for name, c, pf, into in ((model_name, cfg, per_frame, runs), (big_name, big, big_per_frame, runs_960)):
        log(f"  model {name}, larger batches:")
        for impl in ("packed", "flip"):
            for cap in big_caps:
                measured(c, pf, big_pool, into, "bf16", impl, cap)
    ok = [r for r in runs if "audio_per_s" in r]
    best_960 = max((r for r in runs_960 if "audio_per_s" in r), key=lambda r: r["audio_per_s"], default=None)
    best = max(ok, key=lambda r: r["audio_per_s"]) if ok else None
    base = next((r for r in ok if r["precision"] == "fp32" and r["rnn_impl"] == "packed"
                 and r["max_frames"] == caps[len(caps) // 2]), None)
    out = {"model": model_name, "matmul_gflop_per_s": rates, "runs": runs, "model_960": big_name,
           "runs_960": runs_960, "best_960": best_960, "gflop_per_audio_s_960": rnd(3 * big_per_frame * 25 / 1e9),
           "best": best, "gflop_per_audio_s": rnd(3 * per_frame * 25 / 1e9), "features": out_features}
    epoch_min = rnd(TRAIN_CLEAN_100_S / best["audio_per_s"] / 60) if best else None
    out["train_clean_100_epoch_min"] = epoch_min
    out["targets"] = [target("best training throughput vs the ~10,000 audio s/s projection",
                             best["audio_per_s"] if best else None, 10_000, True, " audio s/s"),
                      target("train-clean-100 epoch (100.6 h) at the best throughput", epoch_min, 2.0, False, " min"),
                      target("model FLOP utilization of the best configuration vs its matmul rate",
                             best["mfu"] if best else None, 0.30, True),
                      target(f"model FLOP utilization of {big_name} (bf16, best configuration) vs the bf16 matmul rate",
                             best_960["mfu"] if best_960 else None, 0.30, True)]
    if best and base:
        out["best_vs_fp32_packed_default_cap"] = rnd(best["audio_per_s"] / base["audio_per_s"])
    return out


def measure_features(device: torch.device, tiny: bool) -> dict:
    """Log-mel audio s/s: one batch of padded waveforms on ``device`` against per utterance on one CPU thread."""
    durations = librispeech_durations(4 if tiny else 80, random.Random(0))  # ~1,000 s: a 100k-frame batch
    lengths = torch.tensor([round(d * 16000) for d in durations])
    waves = torch.randn(len(durations), int(lengths.max())) * 0.1  # (B, S)
    batch = WaveBatch(waves.pin_memory() if device.type == "cuda" else waves, lengths, torch.zeros(0),
                      torch.zeros(len(durations)), [str(i) for i in range(len(durations))], [""] * len(durations))
    on_device = LogMel(FeatureConfig()).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    t_device = best_time(lambda: batch.featurize(on_device), reps=3 if tiny else 10, sync=sync)
    cpu = LogMel(FeatureConfig())
    with threads(1):
        t_cpu = best_time(lambda: [cpu(w[:n]) for w, n in zip(waves, lengths)], reps=1 if tiny else 2)
    audio_s = float(lengths.sum()) / 16000
    log(f"  log-mel of {audio_s:,.0f} s of audio: {device.type} batch {audio_s / t_device:,.0f} audio s/s "
        f"(host-to-device copy included), one CPU thread per utterance {audio_s / t_cpu:,.0f}: "
        f"{t_cpu / t_device:.2f}x")
    return {"audio_s": rnd(audio_s), "device_audio_per_s": rnd(audio_s / t_device),
            "cpu_thread_audio_per_s": rnd(audio_s / t_cpu), "device_vs_cpu_thread": rnd(t_cpu / t_device)}
