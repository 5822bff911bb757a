"""One-off measurement (CUDA): what three settings cost or gain on the LibriSpeech recipes' GPU steps.

The questions (benchmarks/README.md, GPU; recipes/librispeech/README.md), each a variant of the recipe's own
configuration, timed in alternating rounds over the same batches against the recipe as it was, so that a drift
of the machine hits all alike (full training steps: CTC loss, backward, AdamW, the loss scaler as ``asr train``
uses it on a GPU; synthetic features already on the GPU):

- ``residual``: ``model.residual=true`` (each BiLSTM layer above the first adds its input to its output), the
  main job's setting since 2026-11-28, 2 points of WER better there on the CPU. An addition per layer: the
  prediction is no measurable cost, and cuDNN's persistent kernel (flip on batches of a multiple of 8) kept.
- ``fused_adamw``: ``torch.optim.AdamW(fused=True)`` instead of the default (foreach) on the GPU; on the CPU
  fused is 2.5x faster per optimizer step. Predicted: a few percent at 100k frames, where the host's launches
  bound the step (gpu_profile.py), nothing at the 960 h model's 200k.
- ``sub3``: ``model.subsampling=3`` (30 ms output frames instead of 40 ms: more room for CTC's blanks between
  repeated letters at fast speaking rates, 4/3 of the LSTM frames). Predicted: about 1.3x slower per audio
  second for the 100 h model, where the LSTM is most of the step (measured: 1.25x).

``all3``: the three together. Per configuration, ``ROUNDS`` rounds of ``STEPS`` steps of each variant, the median
step time, and the ratio of each variant to ``before``. Measured on an H200 on 2026-11-28 (benchmarks/README.md):
all three are now the recipes' settings. Not part of run.py: a one-off, kept with its numbers in the README.

    python benchmarks/gpu_variants_ab.py --out DIR   # on a CUDA machine; DIR/gpu_variants_ab.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import log  # also puts the repository on sys.path

import torch

ROUNDS, STEPS, WARMUP = 3, 8, 4
# Each variant's settings; "before": the recipes' as they were until 2026-11-28 (the reference of the ratios)
VARIANTS = {"before": {"residual": False, "subsampling": 4, "fused": False},
            "residual": {"residual": True, "subsampling": 4, "fused": False},
            "fused_adamw": {"residual": False, "subsampling": 4, "fused": True},
            "sub3": {"residual": False, "subsampling": 3, "fused": False},
            "all3": {"residual": True, "subsampling": 3, "fused": True}}
# (model, data.max_frames, batches cut to a multiple of 8 utterances (at most 128), variants): the recipes' settings
CONFIGS = [("librispeech_100", 100_000, True, ("before", "residual", "fused_adamw", "sub3", "all3")),
           ("librispeech_960", 200_000, False, ("before", "residual", "fused_adamw", "sub3", "all3"))]


def variant(name: str, model_name: str, device: torch.device):
    """Model and optimizer of the recipe's ``model_name`` with ``name``'s settings, on ``device``."""
    from bench_train import train_config

    from asr.checkpoint import build_model
    from asr.text import CharTokenizer

    v = VARIANTS[name]
    cfg = train_config(model_name)
    cfg.model.residual, cfg.model.subsampling = v["residual"], v["subsampling"]
    torch.manual_seed(0)
    model = build_model(cfg, CharTokenizer()).train().to(device)
    # not fused: None, PyTorch's default on a GPU (foreach); fused=False would pick its slower per-tensor loop
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                            fused=v["fused"] or device.type == "cpu" or None)
    return model, opt


def ab(model_name: str, cap: int, x8: bool, names: tuple[str, ...], device: torch.device, pool, rounds: int,
       steps: int) -> dict:
    from bench_train import train_config
    from gpu_profile import on_device, synchronizer
    from gpu_rnn_ab import cut_to_8, launches, summarize

    from asr.precision import needs_loss_scale
    from asr.train import FP16_INIT_SCALE, _step

    _, _, batches = on_device(train_config(model_name), pool, cap, device, steps + 1,
                              cut_to_8 if x8 else (lambda ids: ids))
    amp = torch.bfloat16 if device.type == "cuda" else None
    runs = {}
    for name in names:
        model, opt = variant(name, model_name, device)
        scaler = torch.amp.GradScaler(device.type, init_scale=FP16_INIT_SCALE,
                                      enabled=needs_loss_scale(amp, device))
        for _ in range(WARMUP):  # cuDNN plans, the allocator, and the loss scale's first skipped steps
            _step(model, opt, batches[0], device, amp, 1e-4, 5.0, scaler)
        runs[name] = (model, opt, scaler)
    kernels = {name: launches(m, o, batches[1], device, amp, s) for name, (m, o, s) in runs.items()}
    sync = synchronizer(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    skipped = {name: 0 for name in names}
    for _ in range(rounds):
        for name, (model, opt, scaler) in runs.items():
            for b in batches[1:]:
                sync()
                t = time.perf_counter()
                loss, _, _ = _step(model, opt, b, device, amp, 1e-4, 5.0, scaler)
                sync()
                times[name].append(time.perf_counter() - t)
                skipped[name] += loss is None
    row = {"model": model_name, "precision": "bf16", "max_frames": cap, "cut_to_8": x8, "skipped_steps": skipped,
           "launches": {k: v and v["launches"] for k, v in kernels.items()}}
    text = summarize(row, times, batches, steps, rounds)
    log(f"  {model_name} bf16 cap {cap:>7,}{' x8' if x8 else ''}: launches {row['launches']}; {text}; "
        f"skipped {skipped}")
    return row


def main() -> None:
    from bench_train import make_pool

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU: checks this script runs")
    args = ap.parse_args()
    dry = args.cpu_dry_run or not torch.cuda.is_available()
    device = torch.device("cpu" if dry else "cuda")
    pool = make_pool("librispeech", 24 if dry else 2000, seed=1, scale=0.25 if dry else 1.0)
    out = {"device": torch.cuda.get_device_name() if not dry else "cpu", "torch": torch.__version__, "rows": []}
    configs = [("tiny", 800, False, tuple(VARIANTS))] if dry else CONFIGS
    for m, cap, x8, names in configs:
        out["rows"].append(ab(m, cap, x8, names, device, pool, 1 if dry else ROUNDS, 1 if dry else STEPS))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_variants_ab.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
