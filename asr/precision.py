"""Numeric precision: which autocast dtype a setting means on a device, and whether a CPU computes bf16.

Training (``TrainConfig.precision``) and inference (``--precision`` of asr eval, transcribe, align and serve)
share these rules; benchmarks/README.md ("bf16 on CPU") has the measurements behind them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16, read from Linux's cpuinfo flags).

    oneDNN emulates bf16 on other CPUs, slower than fp32; False where the flags cannot be read."""
    try:
        flags = {f for line in Path(cpuinfo).read_text().splitlines() if line.startswith("flags")
                 for f in line.split(":", 1)[1].split()}
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (a TrainConfig.precision) on ``device``; None: fp32, no autocast.

    auto: bf16 on a GPU that computes it natively (compute capability 8.0 and up: A100, H100, RTX 30xx+),
    fp16 on older GPUs (V100, T4, RTX 20xx), whose bf16 is emulated or missing; fp32 on CPU (bf16 there pays
    only for short utterances: see the README's Precision notes).
    """
    # torch.cuda.is_bf16_supported() says True on a T4 (emulation); compute capability 8 is what computes bf16
    native_bf16 = device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8
    if precision == "auto":
        return None if device.type != "cuda" else torch.bfloat16 if native_bf16 else torch.float16
    if precision == "bf16" and device.type == "cuda" and not native_bf16:
        print(f"warning: precision=bf16 on {torch.cuda.get_device_name(device)}, which has no native bf16: slow or "
              f"unsupported there; precision=fp16 (or auto) is the fast choice", file=sys.stderr)
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        print("warning: precision=bf16 on a CPU without native bf16 (no avx512_bf16 or amx_bf16 flag): oneDNN "
              "emulates it, slower than fp32; precision=fp32 is the fast choice here", file=sys.stderr)
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def needs_loss_scale(amp: torch.dtype | None, device: torch.device) -> bool:
    """Whether training under autocast to ``amp`` on ``device`` computes fp16 gradients, which underflow
    without a loss scale: under fp16, and under any autocast on a GPU, where PyTorch runs cuDNN's LSTM in fp16
    whatever the autocast dtype (``aten/src/ATen/cudnn/AutocastRNN.cpp`` casts its input and weights to half)."""
    return amp is torch.float16 or (amp is not None and device.type == "cuda")


class Autocast(torch.nn.Module):
    """``model`` run under autocast to ``dtype`` for inference; its log-probs come back in float32, as decoders,
    alignment and scoring take them. (``asr train`` autocasts its own step instead.)"""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(features.device.type, dtype=self.dtype):
            log_probs, out_lengths = self.model(features, lengths)  # (B, T', V), (B,)
        return log_probs.float(), out_lengths
