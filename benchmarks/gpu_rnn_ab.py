"""One-off measurement (CUDA): cuDNN's packed LSTM against flip, interleaved, on the recipe's settings.

The question (benchmarks/README.md, GPU): which LSTM should ``model.rnn_impl=auto`` pick on a GPU? bench_gpu's
sweeps time each configuration once for 6 steps, and two sweeps of the same code differed by up to 25 % per
configuration, more than packed and flip differ. Here the two run in alternating rounds over the same batches
(full training steps: CTC loss, backward, AdamW; synthetic features already on the GPU), so that a drift of
the machine hits both alike: per configuration, ``ROUNDS`` rounds of ``STEPS`` steps each, the median step time
of each LSTM over all its steps, and their ratio, with the kernel launches of one step of each (torch.profiler).

The ``x8`` rows tested a prediction (measured on an H100 on 2026-11-27: it held; benchmarks/README.md, GPU,
``results/gpu_rnn_ab_h100.json``): PyTorch asks cuDNN for its persistent LSTM kernel
(``CUDNN_RNN_ALGO_PERSIST_STATIC``: the whole sequence in one kernel, the recurrent weights held on chip) only
for fp16 input, one unidirectional layer, 128-multiple sizes and 8-multiple batches of at most 128
(``aten/src/ATen/native/cudnn/RNN.cpp``, ``get_algo``) on sm >= 8.0. flip's passes are such layers; so fp16
(``precision=fp16``, with the loss scaler) on batches cut to a multiple of 8 utterances, at most 128, should
launch far fewer kernels than the ~15,600 per step of the standard algorithm, which leave the GPU idle 60 %
of a 100k-frame step (``gpu_profile.py``). bf16 on the same cut batches is the reference. Not part of run.py:
a one-off, kept with its numbers in the README.

    python benchmarks/gpu_rnn_ab.py --out DIR [--x8-only | --rows 0,5]   # on a CUDA machine; DIR/gpu_rnn_ab.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import HOP_S, log, rnd  # also puts the repository on sys.path

import torch

ROUNDS, STEPS = 3, 8
# (model, precision, data.max_frames, batches cut to a multiple of 8 utterances, at most 128): the recipes' caps
CONFIGS = [("librispeech_100", "bf16", 100_000, False), ("librispeech_100", "bf16", 200_000, False),
           ("librispeech_100", "fp32", 100_000, False), ("librispeech_960", "bf16", 200_000, False),
           ("librispeech_960", "fp32", 200_000, False),
           ("librispeech_100", "bf16", 100_000, True), ("librispeech_100", "fp16", 100_000, True),
           ("librispeech_100", "bf16", 200_000, True), ("librispeech_100", "fp16", 200_000, True),
           ("librispeech_960", "bf16", 200_000, True), ("librispeech_960", "fp16", 200_000, True)]
AMP = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def cut_to_8(ids: list[int]) -> list[int]:
    """The first utterances of a batch, a multiple of 8 and at most 128 of them (at least 1)."""
    return ids[: max(1, min(128, len(ids) - len(ids) % 8))]


def launches(model, opt, batch, device, amp, scaler) -> dict | None:
    """CUDA kernels launched by one training step, and the names of the 3 that took most device time (whether
    cuDNN ran a persistent kernel shows in them); None on the CPU."""
    from gpu_profile import cuda_kernels, device_us
    from torch.profiler import ProfilerActivity, profile

    from asr.train import _step

    if device.type != "cuda":
        return None
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        _step(model, opt, batch, device, amp, 1e-4, 5.0, scaler)
        torch.cuda.synchronize()
    kernels = cuda_kernels(prof.key_averages())
    top = sorted(kernels, key=device_us, reverse=True)[:3]
    return {"launches": sum(e.count for e in kernels), "top": [e.key[:100] for e in top]}


def summarize(row: dict, times: dict[str, list[float]], batches: list, steps: int, rounds: int) -> str:
    """Adds the utterances per timed batch (``batches[1:]``) and each variant's median step, audio rate, ratio to the
    first variant and per-round medians to ``row`` (``times``: each variant's step times, round after round);
    returns them as one log line's text."""
    names = list(times)
    audio_s = statistics.mean(float(b.feature_lengths.sum()) * HOP_S for b in batches[1:])
    row["utts_per_step"] = rnd(statistics.mean(len(b.ids) for b in batches[1:]))
    med = {name: statistics.median(v) for name, v in times.items()}
    for name in names:
        row[f"{name}_step_s"] = rnd(med[name])
        row[f"{name}_audio_per_s"] = rnd(audio_s / med[name])
    for name in names[1:]:
        row[f"{name}_vs_{names[0]}"] = rnd(med[names[0]] / med[name])
    row["round_medians"] = {name: [rnd(statistics.median(v[r * steps:(r + 1) * steps])) for r in range(rounds)]
                            for name, v in times.items()}
    return (", ".join(f"{name} {med[name]:.4f} s ({audio_s / med[name]:,.0f} audio s/s)" for name in names)
            + f" per step; per round {row['round_medians']}")


def ab(model_name: str, precision: str, cap: int, x8: bool, device: torch.device, pool, rounds: int,
       steps: int, impls: tuple[str, ...] = ("packed", "flip")) -> dict:
    from bench_train import train_config
    from gpu_profile import on_device, synchronizer

    from asr.train import _step

    model, opt, batches = on_device(train_config(model_name), pool, cap, device, steps + 1,
                                    cut_to_8 if x8 else (lambda ids: ids))
    amp = AMP[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    sync = synchronizer(device)
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    for impl in times:  # warm-up of each: cuDNN plans, allocator
        model.cfg.rnn_impl = impl
        _step(model, opt, batches[0], device, amp, 1e-4, 5.0, scaler)
    kernels = {}
    for impl in times:
        model.cfg.rnn_impl = impl
        kernels[impl] = launches(model, opt, batches[1], device, amp, scaler)
    for _ in range(rounds):
        for impl, into in times.items():
            model.cfg.rnn_impl = impl
            for b in batches[1:]:
                sync()
                t = time.perf_counter()
                _step(model, opt, b, device, amp, 1e-4, 5.0, scaler)
                sync()
                into.append(time.perf_counter() - t)
    row = {"model": model_name, "precision": precision, "max_frames": cap, "cut_to_8": x8, "kernels": kernels}
    text = summarize(row, times, batches, steps, rounds)
    log(f"  {model_name} {precision} cap {cap:>7,}{' x8' if x8 else ''}: launches "
        f"{ {k: v and v['launches'] for k, v in kernels.items()} }; {text}")
    return row


def main() -> None:
    from bench_train import make_pool

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--x8-only", action="store_true", help="only the rows on batches cut to a multiple of 8")
    ap.add_argument("--rows", default="", help="comma-separated indices into CONFIGS (default: all)")
    ap.add_argument("--impls", default="packed,flip",
                    help="LSTMs to compare (model.rnn_impl), the first the reference: packed, flip")
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU: checks this script runs")
    args = ap.parse_args()
    dry = args.cpu_dry_run or not torch.cuda.is_available()
    device = torch.device("cpu" if dry else "cuda")
    pool = make_pool("librispeech", 24 if dry else 2000, seed=1, scale=0.25 if dry else 1.0)
    out = {"device": torch.cuda.get_device_name() if not dry else "cpu", "rows": []}
    configs = [("tiny", "fp32", 800, False), ("tiny", "fp32", 1600, True)] if dry else CONFIGS
    if args.rows:
        configs = [configs[int(i)] for i in args.rows.split(",")]
    for m, p, cap, x8 in [c for c in configs if c[3] or not args.x8_only]:
        out["rows"].append(ab(m, p, cap, x8, device, pool, 1 if dry else ROUNDS, 1 if dry else STEPS,
                              tuple(args.impls.split(","))))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_rnn_ab.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
