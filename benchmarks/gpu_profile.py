"""One-off measurement (CUDA): where a GPU training step's time goes, host or device.

The question (benchmarks/README.md, GPU): why does the LibriSpeech-100 model (5x512) reach only ~13 % of
the bf16 matmul rate, when a step's wall time hardly grows from 50k to 200k frames? If the GPU waits for
the host to launch kernels (cuDNN launches a few kernels per time step, layer and direction), the sum of
kernel times is well below the step's wall time, and a larger batch comes almost for free.

For each configuration (model, rnn_impl, batch cap), in bf16 autocast on synthetic features already on the
GPU (no data loading): the wall time of ``steps`` training steps without the profiler, then the same steps
under torch.profiler: kernel launches per step, the sum of kernel times over the wall time (how busy the
GPU is), host time per launch, and the kernels that take most of the time.

Then the same model's forward and backward (flip LSTM, bf16, SpecAugment off; a fixed random projection of
the log-probs as the loss, CTC left out) on one batch, eagerly and replayed as one CUDA graph: what the
step would cost if the host launched nothing. Not part of run.py: a one-off, kept with its numbers in the
README.

    python benchmarks/gpu_profile.py --out DIR   # on a CUDA machine; DIR/gpu_profile.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import HOP_S, log, rnd  # also puts the repository on sys.path

import torch
from torch.profiler import ProfilerActivity, profile

CONFIGS = [("librispeech_100", "flip", 100_000), ("librispeech_100", "flip", 800_000),
           ("librispeech_100", "packed", 100_000), ("librispeech_960", "flip", 800_000)]


def device_us(e) -> float:
    """A profiler event's own time on the device, microseconds (the attribute's name moved across versions)."""
    return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0.0)


def cuda_kernels(avgs) -> list:
    """The CUDA kernels among a profile's ``key_averages()``."""
    return [e for e in avgs if str(getattr(e, "device_type", "")).endswith("CUDA") and device_us(e) > 0]


def synchronizer(device: torch.device):
    """What waits for the device's queued work before a clock is read: torch.cuda.synchronize, or nothing on CPU."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def on_device(cfg, pool, cap: int, device: torch.device, n: int, pick=lambda ids: ids):
    """A model of ``cfg`` with its optimizer on ``device``, and the epoch's first ``n`` batches of ``pool`` at
    ``cap`` frames (utterances chosen by ``pick``), collated there: the measurements time no data loading."""
    from bench_train import ours_setup

    from asr.data import collate

    model, opt, ds, sampler = ours_setup(cfg, pool, cap, device)
    return model, opt, [collate([ds[i] for i in pick(b)]).to(device) for b in sampler.epoch_batches()[:n]]


def one(model_name: str, impl: str, cap: int, device: torch.device, steps: int, pool) -> dict:
    from bench_train import train_config

    from asr.train import _step

    cfg = train_config(model_name)
    cfg.model.rnn_impl = impl
    model, opt, batches = on_device(cfg, pool, cap, device, steps + 1)
    amp = torch.bfloat16 if device.type == "cuda" else None
    sync = synchronizer(device)
    _step(model, opt, batches[0], device, amp, 1e-4, 5.0)  # warm-up: cuDNN plans, allocator
    sync()
    t = time.perf_counter()
    for b in batches[1:]:
        _step(model, opt, b, device, amp, 1e-4, 5.0)
    sync()
    wall = (time.perf_counter() - t) / steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for b in batches[1:]:
            _step(model, opt, b, device, amp, 1e-4, 5.0)
        sync()
    avgs = prof.key_averages()
    kernels = cuda_kernels(avgs)
    kernel_s = sum(device_us(e) for e in kernels) / 1e6 / steps
    launches = sum(e.count for e in kernels) / steps
    top = sorted(kernels, key=device_us, reverse=True)[:6]
    frames = sum(int(b.feature_lengths.sum()) for b in batches[1:]) / steps
    row = {"model": model_name, "rnn_impl": impl, "max_frames": cap, "utts_per_step": len(batches[1].ids),
           "step_s": rnd(wall), "audio_per_s": rnd(frames * HOP_S / wall), "kernel_s_per_step": rnd(kernel_s),
           "gpu_busy": rnd(kernel_s / wall), "launches_per_step": rnd(launches),
           "host_us_per_launch": rnd(wall / max(launches, 1) * 1e6),
           "top_kernels": [{"name": e.key[:90], "share": rnd(device_us(e) / 1e6 / steps / max(kernel_s, 1e-12)),
                            "calls_per_step": rnd(e.count / steps)} for e in top]}
    log(f"  {model_name} {impl:7s} cap {cap:>7,}: step {wall:.3f} s ({row['audio_per_s']:,.0f} audio s/s), kernels "
        f"{kernel_s:.3f} s = {row['gpu_busy']:.0%} busy, {launches:,.0f} launches per step, "
        f"{row['host_us_per_launch']:.1f} us of wall per launch")
    for k in row["top_kernels"]:
        log(f"      {k['share']:5.1%} {k['calls_per_step']:8,.0f} calls  {k['name']}")
    return row


def graphed(model_name: str, cap: int, device: torch.device, reps: int, pool) -> dict:
    """Model forward + backward on one batch: eager against one CUDA graph replay, seconds per pass."""
    from asr.config import compose, to_dataclass

    cfg = to_dataclass(compose([f"model={model_name}", "specaug=none", "model.rnn_impl=flip"]))
    model, _, batches = on_device(cfg, pool, cap, device, 2)
    batch = batches[1]
    feats, lengths = batch.features, batch.feature_lengths.to(device)
    cuda = device.type == "cuda"
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=cuda):
        seed = torch.randn_like(model(feats, lengths)[0])  # (B, T', V): the loss is <log-probs, seed>

    def forward_backward() -> None:
        with torch.autocast(device.type, torch.bfloat16, enabled=cuda, cache_enabled=False):
            log_probs, _ = model(feats, lengths)
        (log_probs * seed).sum().backward()

    sync = synchronizer(device)

    def per_pass(fn) -> float:
        fn()
        sync()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        return (time.perf_counter() - t) / reps

    eager = per_pass(forward_backward)
    row = {"model": model_name, "max_frames": cap, "utts": len(batch.ids), "eager_s": rnd(eager)}
    if cuda:
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the default stream, as torch.cuda.graph asks
                for _ in range(3):
                    forward_backward()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                forward_backward()
            row["graph_s"] = rnd(per_pass(graph.replay))
            row["eager_vs_graph"] = rnd(eager / row["graph_s"])
        except Exception as e:  # what stops a capture is a finding too
            row["graph_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    log(f"  {model_name} flip cap {cap:>7,} ({row['utts']} utterances): forward+backward eager {eager:.3f} s"
        + (f", CUDA graph {row['graph_s']:.3f} s ({row['eager_vs_graph']:.2f}x)" if "graph_s" in row else "")
        + (f", graph capture failed: {row['graph_error']}" if "graph_error" in row else ""))
    return row


def main() -> None:
    from bench_train import make_pool

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU: checks this script runs")
    args = ap.parse_args()
    dry = args.cpu_dry_run or not torch.cuda.is_available()
    device = torch.device("cpu" if dry else "cuda")
    configs = [("tiny", "flip", 800), ("tiny", "packed", 800)] if dry else CONFIGS
    pool = make_pool("librispeech", 24 if dry else 4000, seed=1, scale=0.25 if dry else 1.0)
    out = {"device": str(device), "rows": [], "graphs": []}

    def save() -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_profile.json").write_text(json.dumps(out, indent=1))

    for m, impl, cap in configs:
        out["rows"].append(one(m, impl, cap, device, 1 if dry else args.steps, pool))
        save()
    for m, cap in [("tiny", 800)] if dry else [("librispeech_100", 100_000), ("librispeech_100", 800_000),
                                               ("librispeech_960", 800_000)]:
        out["graphs"].append(graphed(m, cap, device, 1 if dry else 5, pool))
        save()


if __name__ == "__main__":
    main()
