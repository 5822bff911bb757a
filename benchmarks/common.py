"""What every benchmark shares: machine facts, load checks, timers, the matmul ceiling, FLOP counts, results.

Not part of the package or the test suite; ``benchmarks/run.py`` is the entry point.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python benchmarks/run.py` puts benchmarks/, not the repo, on sys.path
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from asr.io import atomic_write_text  # noqa: E402

SHARED = Path(os.environ.get("ASR_SHARED_DATA", REPO.parent / "shared" / "data"))
LIBRISPEECH_SAMPLE = SHARED / "librispeech-sample"
HOP_S = 0.01  # feature frame shift, seconds (conf/features/logmel80.yaml)
FRAME_S = 0.04  # output frame of the synthetic log-probs (as after the default /4 conv front), seconds
H100_AUDIO_PER_S = 10_000.0  # projected LibriSpeech-model training throughput on one H100, audio s per s
TRAIN_CLEAN_100_S = 100.6 * 3600  # seconds of audio in LibriSpeech's train-clean-100 (100.6 h)


@dataclass
class Context:
    """What run.py hands every benchmark."""

    quick: bool  # minimal sizes: a smoke run, numbers meaningless
    out: Path  # results directory (JSON per benchmark)
    work: Path  # scratch files (LMs, long audio, checkpoints), reused between runs, outside the repository
    threads: int  # torch threads for the multi-threaded measurements
    model: str | None  # checkpoint for inference/beam benchmarks (None: runs/demo/best.pt or random)
    results: dict  # results of the benchmarks already run in this invocation, by name


# ---------------------------------------------------------------------------------------------- machine


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    """pid -> (user + system clock ticks so far, command name), for every process we may read."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1: stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(d.name)] = (int(fields[11]) + int(fields[12]), name)  # utime, stime
    return out


def others_cpu(interval: float = 2.0) -> tuple[float, list[str]]:
    """Cores used by other processes over the next ``interval`` seconds, and the busiest of them."""
    me = os.getpid()
    a = _cpu_ticks()
    time.sleep(interval)
    b = _cpu_ticks()
    hz = os.sysconf("SC_CLK_TCK")
    used = sorted(((b[p][0] - a[p][0]) / hz / interval, p, b[p][1]) for p in b if p in a and p != me)[::-1]
    return sum(u for u, _, _ in used), [f"{n}({p}) {u:.0%}" for u, p, n in used[:5] if u >= 0.05]


SNAPSHOT_S = 1.0  # how long load_snapshot samples other processes, seconds (run.py --quick: 0.05)


def load_snapshot(interval: float | None = None) -> dict:
    """1/5/15-minute load averages, and the cores other processes use now (sampled over ``interval`` s)."""
    one, five, fifteen = os.getloadavg()
    try:
        cores, busy = others_cpu(SNAPSHOT_S if interval is None else interval)
    except (OSError, ValueError, IndexError):
        cores, busy = None, []
    return {"load1": round(one, 2), "load5": round(five, 2), "load15": round(fifteen, 2),
            "others_cores": None if cores is None else round(cores, 2), "busy": busy}


def wait_for_idle(max_wait_s: float, threshold: float = 0.15, poll_s: float = 30.0) -> dict:
    """Poll until other processes use less than ``threshold`` cores (or ``max_wait_s`` passed); last snapshot."""
    start = time.monotonic()
    snap = load_snapshot(3.0)
    while (snap["others_cores"] or 0) >= threshold and time.monotonic() - start < max_wait_s:
        log(f"  machine busy: others use {snap['others_cores']} cores ({', '.join(snap['busy'])}), load "
            f"{snap['load1']}; waiting {poll_s:.0f} s")
        time.sleep(poll_s)
        snap = load_snapshot(3.0)
    snap["waited_s"] = round(time.monotonic() - start, 1)
    return snap


class threads:
    """``with threads(n):`` torch intra-op threads (and BLAS threads, through threadpoolctl when present)."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        # threadpoolctl first, so that the limits it restores on exit are the ones from before this context
        # (torch.set_num_threads also sets OpenMP's; taken after it, a nested threads(1) left torch on 1 thread)
        self.old = torch.get_num_threads()
        try:
            from threadpoolctl import threadpool_limits

            self.pool = threadpool_limits(self.n)
        except ImportError:
            self.pool = None
        torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.restore_original_limits()
        torch.set_num_threads(self.old)


# ---------------------------------------------------------------------------------------------- timing


def log(msg: str) -> None:
    print(msg, flush=True)


def best_time(fn: Callable[[], object], reps: int, warmup: int = 1, sync: Callable[[], None] | None = None) -> float:
    """Fastest of ``reps`` timed calls after ``warmup`` untimed ones, seconds."""
    for _ in range(warmup):
        fn()
    best = math.inf
    for _ in range(reps):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_gflops(n_threads: int, size: int = 2048, reps: int = 5, dtype=torch.float32, device: str = "cpu") -> float:
    """Measured dense matmul rate, 2 n^3 FLOPs for two ``size`` x ``size`` matrices, best of ``reps``.

    On CPU the better of two engines: torch.matmul (MKL's sgemm for fp32) and oneDNN's inner product, the
    engine of the LSTM kernel. MKL takes a slower path on AMD: 147 against 211 GFLOP/s fp32 on 2 Zen 4 cores,
    where the 5x512 LSTM stack alone ran at 113 % of MKL's rate."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    with threads(n_threads):
        t = best_time(lambda: torch.matmul(a, b), reps, warmup=2, sync=sync)
        if device == "cpu" and torch.backends.mkldnn.is_available():
            import torch.utils.mkldnn as mkldnn

            linear = torch.nn.Linear(size, size, bias=False).to(dtype)
            with torch.no_grad():
                onednn, x = mkldnn.to_mkldnn(linear, dtype), a.to_mkldnn()
                t = min(t, best_time(lambda: onednn(x), reps, warmup=2))
    return 2 * size**3 / t / 1e9


# ---------------------------------------------------------------------------------------------- FLOPs
#
# Counted analytically, multiply-add = 2 FLOPs, per OUTPUT frame of the model (40 ms after the default /4 conv front;
# 30 ms at model.subsampling 3, whose convs stride 3 and 1 over time):
#
#   conv front:  conv1 (1 -> C, 3x3, stride s1 x 2) at s2 time x F/2 positions: 2 * 9 * C     * s2 * F/2
#                conv2 (C -> C, 3x3, stride s2 x 2) at 1 time x F/4 positions:  2 * 9 * C * C * F/4
#                projection C*F/4 -> H:                                       2 * C*F/4 * H
#   LSTM:        per layer and direction, gates (4H) from input (I) and state (H):  2 * 4H * (I + H)
#                with I = H for layer 1 and 2H above; 2 directions
#   output:      2H -> V:                                                     2 * 2H * V
#
# Forward only; a training step costs 3x forward (backward: gradients for inputs and for weights, 2x forward).
# Element-wise work (gate nonlinearities, GELU, log-softmax, CTC, the optimizer) is left out: it is small in
# FLOPs but not in time on a CPU, which is what the gap between the two MFU figures shows.


def lstm_flops_per_frame(hidden: int, layers: int) -> float:
    total = 0.0
    for layer in range(layers):
        inp = hidden if layer == 0 else 2 * hidden
        total += 2 * (2 * 4 * hidden * (inp + hidden))  # 2 directions
    return total


def model_flops_per_frame(hidden: int, layers: int, channels: int, n_mels: int = 80, vocab: int = 29,
                          subsampling: int = 4) -> dict:
    from asr.model import TIME_STRIDES

    f2 = (n_mels - 1) // 2 + 1  # 80 -> 40
    f4 = (f2 - 1) // 2 + 1  # 40 -> 20
    s2 = TIME_STRIDES[subsampling][1]  # conv1 output frames per output frame
    conv = 2 * 9 * channels * s2 * f2 + 2 * 9 * channels * channels * f4 + 2 * channels * f4 * hidden
    lstm = lstm_flops_per_frame(hidden, layers)
    out = 2 * 2 * hidden * vocab
    return {"conv_front": conv, "lstm": lstm, "output": out, "total": conv + lstm + out}


def output_frames(feature_frames: int, subsampling: int = 4) -> int:
    """The conv front's output length for ``feature_frames`` input frames (ceil(T / subsampling))."""
    return -(-feature_frames // subsampling)


# ---------------------------------------------------------------------------------------------- data


def librispeech_durations(n: int, rng: random.Random) -> list[float]:
    """LibriSpeech-like training utterances: 2-17 s, most of them long (train-clean-100: mean 12.7 s,
    three quarters above 11 s). 70 % uniform on 12-17 s, 30 % on 2-12 s: mean 12.25 s."""
    return [rng.uniform(12, 17) if rng.random() < 0.7 else rng.uniform(2, 12) for _ in range(n)]


def demo_durations(n: int, rng: random.Random) -> list[float]:
    """The embedded espeak-ng corpus: one sentence per utterance, about 1-6 s (mean 3.5 s)."""
    return [rng.uniform(1, 6) for _ in range(n)]


MIXES = {"librispeech": librispeech_durations, "demo": demo_durations}


def librispeech_flacs() -> list[Path]:
    """The shared LibriSpeech sample's FLAC files, sorted; [] when the sample is absent."""
    root = LIBRISPEECH_SAMPLE / "LibriSpeech"
    return sorted(root.rglob("*.flac")) if root.is_dir() else []


def librispeech_transcripts() -> dict[str, str]:
    out = {}
    root = LIBRISPEECH_SAMPLE / "LibriSpeech"
    for f in sorted(root.rglob("*.trans.txt")) if root.is_dir() else []:
        for line in f.read_text().splitlines():
            if line.strip():
                uid, text = line.split(" ", 1)
                out[uid] = text
    return out


def speechlike_noise(seconds: float, seed: int = 0, rate: int = 16000):
    """Amplitude-modulated noise at ~4 syllables/s, float32 numpy, peak below 1: audio when no speech is at hand."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6.3)))
    return (0.1 * env * rng.standard_normal(n)).astype(np.float32)


def write_noise_flac(path: str | os.PathLike, seconds: float, seed: int = 0) -> None:
    """``speechlike_noise`` as a 16-bit, 16 kHz FLAC file (a top-level function: process pools can run it)."""
    import soundfile as sf

    sf.write(str(path), speechlike_noise(seconds, seed=seed), 16000, subtype="PCM_16", format="FLAC")


def build_bench_lm(work: Path, n_sentences: int) -> tuple[Path, Path, list[str]]:
    """A 3-gram ARPA LM and a lexicon from ``n_sentences`` of the project's sentence grammar plus the
    LibriSpeech sample's transcripts; cached in ``work``. Returns (arpa, lexicon, words)."""
    from asr.beam import write_lexicon
    from asr.corpus.sentences import sentence_stream
    from asr.lm import build_lm
    from asr.text import normalize_text

    d = work / f"lm-{n_sentences}"
    arpa, lexicon, text = d / "3gram.arpa", d / "lexicon.txt", d / "text.txt"
    if not (arpa.is_file() and lexicon.is_file()):
        d.mkdir(parents=True, exist_ok=True)
        stream = sentence_stream("benchmark-lm")
        lines = [normalize_text(next(stream)).text for _ in range(n_sentences)]
        lines += [normalize_text(t).text for t in librispeech_transcripts().values()]
        atomic_write_text(text, "\n".join(lines) + "\n")
        build_lm(text, 3, arpa, backend="auto")
        write_lexicon(lines, lexicon)
    words = sorted({w for line in text.read_text().splitlines() for w in line.split()})
    return arpa, lexicon, words


def build_bench_char_lm(work: Path, n_sentences: int) -> Path:
    """A character 6-gram ARPA LM (``asr lm build --unit char``) of ``build_bench_lm``'s text; cached in ``work``."""
    from asr.lm import MAX_ORDER, build_lm

    build_bench_lm(work, n_sentences)
    d = work / f"lm-{n_sentences}"
    arpa = d / f"char{MAX_ORDER}.arpa"
    if not arpa.is_file():
        build_lm(d / "text.txt", MAX_ORDER, arpa, backend="auto", unit="char")
    return arpa


# ---------------------------------------------------------------------------------------------- results


def target(name: str, value: float | None, goal: float, higher_is_better: bool, unit: str = "") -> dict:
    met = None if value is None else (value >= goal if higher_is_better else value <= goal)
    return {"name": name, "value": value, "goal": goal, "direction": ">=" if higher_is_better else "<=",
            "unit": unit, "met": met}


def run_on_cuda(ctx: Context, name: str, what: str, measure: Callable[[Callable[[dict], None]], dict]) -> dict:
    """A CUDA-only benchmark's ``run``: without CUDA a result that says ``what`` is unmeasured; with it,
    ``measure(save)``, where ``save(part)`` writes what is measured so far (a run stopped by a time limit keeps it)."""
    result = {"name": name, "quick": ctx.quick, "machine": machine_info(), "load_before": load_snapshot()}
    if not torch.cuda.is_available():
        result["skipped"] = f"no CUDA device on this machine: {what} unmeasured"
        result["targets"] = []
        log(f"  {result['skipped']}")
    else:
        result.update(measure(lambda part: write_result(ctx, name, {**result, **part, "partial": True})))
        result["load_after"] = load_snapshot()
    write_result(ctx, name, result)
    return result


def write_result(ctx: Context, name: str, result: dict) -> Path:
    path = ctx.out / f"{name}.json"
    atomic_write_text(path, json.dumps(result, indent=2, default=_json_default) + "\n")
    return path


def _json_default(x):
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


def rnd(x: float | None, digits: int = 3) -> float | None:
    """Round to ``digits`` significant figures (None stays None)."""
    if x is None or x == 0 or not math.isfinite(x):
        return x
    return round(x, max(0, digits - 1 - int(math.floor(math.log10(abs(x))))))
