"""Benchmark 2: inference real-time factor (processing seconds per audio second) on CPU, and peak memory.

``asr.transcribe.Recognizer(...).transcribe(path)`` as users call it (file read, log-mels, model,
decoding, word alignment), with 1 and 2 threads, for greedy decoding and beam search with a
3-gram LM (``asr.lm.build_lm``) in lexicon mode and lexicon-free, on the LibriSpeech sample files
and on a 10-minute file (the sample files looped, or speech-like noise when the sample is absent;
above 70 s the Recognizer reads it in 60 s windows with 5 s of context each side). Each
configuration runs in its own process, whose peak resident memory is reported (VmHWM: ``ru_maxrss``
survives ``execve`` on Linux and would report the parent's peak).

Model: ``--model``, else runs/demo/best.pt, else a randomly initialized default-size model (conf/
model/small.yaml). Greedy RTF does not depend on the weights; beam-search RTF does: a random
model's near-uniform outputs keep the beam full on every frame, so beam figures with a random
model are a pessimistic bound (the beam benchmark times the decoder on peaked log-probs).
Reference for the ratios: the greedy configuration with 1 thread in this run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (REPO, Context, build_bench_lm, librispeech_flacs, load_snapshot, log,  # noqa: E402
                    machine_info, rnd, speechlike_noise, target, write_result)

LONG_S = 600.0  # the long file, seconds


def _model(ctx: Context) -> tuple[str, str]:
    """(checkpoint path, what it is)."""
    if ctx.model:
        return ctx.model, f"checkpoint {ctx.model}"
    best = REPO / "runs/demo/best.pt"
    if best.is_file():
        return str(best), "trained checkpoint runs/demo/best.pt"
    path = ctx.work / ("random-tiny.pt" if ctx.quick else "random-small.pt")
    if not path.is_file():
        import torch

        from asr.checkpoint import build_model, model_state, save_checkpoint
        from asr.config import compose, to_dataclass
        from asr.text import CharTokenizer

        torch.manual_seed(0)
        cfg = to_dataclass(compose(["model=tiny"] if ctx.quick else []))
        tok = CharTokenizer()
        save_checkpoint(path, model_state(build_model(cfg, tok), cfg, tok))
    size = "tiny" if ctx.quick else "default-size (small.yaml)"
    return str(path), f"randomly initialized {size} model (no runs/demo/best.pt)"


def _audio(ctx: Context) -> dict[str, list[str]]:
    """Audio sets: name -> files."""
    import numpy as np
    import soundfile as sf

    files = librispeech_flacs()
    sets = {}
    if files:
        sets["librispeech-sample"] = [str(f) for f in (files[:1] if ctx.quick else files)]
    long_s = 42.0 if ctx.quick else LONG_S  # quick: just over the 40 s long-form threshold
    long = ctx.work / f"long-{int(long_s)}s.flac"
    if not long.is_file():
        if files:
            parts = [sf.read(str(f), dtype="float32")[0] for f in files]
            loop = np.concatenate(parts)
            wav = np.tile(loop, int(np.ceil(long_s * 16000 / loop.size)))[: int(long_s * 16000)]
        else:
            wav = speechlike_noise(long_s)
        sf.write(str(long), wav, 16000, subtype="PCM_16")
    sets[f"{long_s / 60:g}-minute file"] = [str(long)]
    return sets


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB: VmHWM. Not ``getrusage().ru_maxrss``, which Linux carries
    over ``execve`` from the parent (here: run.py after the train benchmark, gigabytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(spec: dict) -> dict:
    """Configurations in this (fresh) process: per decoder, the RTF of each audio set and the peak memory
    after it (sets run shortest first, so a set's figure is the peak up to and including it)."""
    import soundfile as sf
    import torch

    torch.set_num_threads(spec["threads"])
    from asr.config import DecoderConfig
    from asr.transcribe import Recognizer

    from asr.longform import LongFormConfig

    out = {}
    for dname, variant in spec["decoders"].items():
        dec = {k: v for k, v in variant.items() if k not in ("longform", "words", "only_sets", "precision")}
        rec = Recognizer(spec["model"], DecoderConfig(**dec), longform=LongFormConfig(**variant.get("longform", {})),
                         precision=variant.get("precision", "fp32"))
        words = variant.get("words", True)
        out[dname] = {}
        for name, files in spec["sets"].items():
            if name not in variant.get("only_sets", [name]):
                continue
            duration = sum(sf.info(f).duration for f in files)
            if duration < 60:
                rec.transcribe(files[0], words=words)  # warm-up on short files (a long one warms itself up)
            t = time.perf_counter()
            for f in files:
                rec.transcribe(f, words=words, progress=False)
            wall = time.perf_counter() - t
            out[dname][name] = {"audio_s": round(duration, 2), "wall_s": round(wall, 3), "rtf": wall / duration,
                                "peak_rss_mb": peak_rss_mb()}
    return {"results": out, "peak_rss_mb": peak_rss_mb()}


def run(ctx: Context) -> dict:
    result = {"name": "infer", "quick": ctx.quick, "machine": machine_info(), "load_before": load_snapshot(),
              "configs": []}
    model, what = _model(ctx)
    sets = _audio(ctx)
    arpa, lexicon, _ = build_bench_lm(ctx.work, 300 if ctx.quick else 20000)
    result.update({"model": what, "beam_size": 8 if ctx.quick else 50,
                   "audio_sets": {k: len(v) for k, v in sets.items()},
                   "lm": f"3-gram ARPA from the sentence grammar + LibriSpeech sample text, "
                         f"{arpa.stat().st_size // 1024} kB"})
    if "librispeech-sample" not in sets:
        result["librispeech_sample_skipped"] = "shared LibriSpeech sample absent (set ASR_SHARED_DATA)"
        log("  LibriSpeech sample absent: skipping that set (set ASR_SHARED_DATA)")
    beam = 8 if ctx.quick else 50  # conf/decoder/beam.yaml: 50
    decoders = {"greedy": {"type": "greedy"},
                "beam+LM lexicon": {"type": "beam", "beam_size": beam, "lm": str(arpa), "lexicon": str(lexicon)},
                "beam+LM lexicon-free": {"type": "beam", "beam_size": beam, "lm": str(arpa), "lexicon_free": True}}
    thread_counts = (1,) if ctx.quick else (1, 2)
    if ctx.quick:  # beam search on the short set only: seconds saved, the long-form path runs with greedy
        for name in ("beam+LM lexicon", "beam+LM lexicon-free"):
            decoders[name]["only_sets"] = [next(iter(sets))]
    log(f"  model: {what}")
    # one process per configuration, for its own peak memory; --quick puts all decoders in one process
    groups = [{k: v} for k, v in decoders.items()] if not ctx.quick else [decoders]
    # and where greedy's time goes, 1 thread: without word alignment; the former long-form windows of 30 s
    # (5 s context) instead of 60 s: 1.5x instead of 1.2x the model's work on long files
    extras = {"greedy, words=False": {"type": "greedy", "words": False},
              "greedy, long-form 30 s windows": {"type": "greedy", "longform": {"window_s": 30.0, "context_s": 5.0,
                                                                              "threshold_s": 40.0}}}
    from asr.precision import cpu_has_native_bf16

    if cpu_has_native_bf16():  # --precision bf16, where the CPU computes it
        extras["greedy, bf16"] = {"type": "greedy", "precision": "bf16"}
        extras["beam+LM lexicon, bf16"] = {**decoders["beam+LM lexicon"], "precision": "bf16"}
    runs = [(n, g) for n in thread_counts for g in groups]
    runs += [] if ctx.quick else [(1, {k: v}) for k, v in extras.items()]
    for n, group in runs:
        spec = {"model": model, "threads": n, "decoders": group, "sets": sets}
        env = {**os.environ, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                              text=True, env=env, cwd=str(REPO))
        if proc.returncode != 0:
            raise RuntimeError(f"infer child failed ({', '.join(group)}, {n} threads):\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        for dname, sets_rtf in r["results"].items():
            cfg = {"decoder": dname, "threads": n, "peak_rss_mb": rnd(r["peak_rss_mb"]),
                   "sets": {k: {kk: rnd(vv) for kk, vv in v.items()} for k, v in sets_rtf.items()}}
            result["configs"].append(cfg)
            log(f"  {dname:22s} {n} thread{'s' if n > 1 else ' '}: " + "; ".join(
                f"{k} RTF {v['rtf']:.4f} (peak RSS {v['peak_rss_mb']:.0f} MB)" for k, v in cfg["sets"].items()))
    ref = {s: v["rtf"] for c in result["configs"] if c["decoder"] == "greedy" and c["threads"] == 1
           for s, v in c["sets"].items()}
    for c in result["configs"]:
        c["rtf_vs_greedy_1_thread"] = {s: rnd(v["rtf"] / ref[s]) for s, v in c["sets"].items()}
    result["targets"] = []
    for c in result["configs"]:
        if c["threads"] != 1:
            continue
        if c["decoder"] in extras:
            continue
        goal = 0.01 if c["decoder"] == "greedy" else 0.05
        for s, v in c["sets"].items():
            result["targets"].append(target(f"RTF {c['decoder']}, 1 thread, {s}", v["rtf"], goal, False))
    result["load_after"] = load_snapshot()
    write_result(ctx, "infer", result)
    return result


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    print(json.dumps(child(json.loads(sys.argv[2]))))
