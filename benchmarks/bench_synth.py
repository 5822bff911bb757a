"""Benchmark 6: speaking the embedded corpus, espeak-ng's library in-process (a fresh copy per sentence,
``asr.corpus.espeak_lib``) against the ``espeak-ng`` program run once per sentence, 1 process.

Both sides speak the same sentences of the corpus grammar in the same training voices, speeds and pitches
(``asr.corpus.synth``'s plan for the train split), in alternating rounds (best of each); the samples must be
equal bit for bit. Rate in seconds of speech per second, for espeak alone and for what ``asr synth-corpus``
does per utterance (speak, trim, resample to 16 kHz, write a FLAC).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from itertools import islice

import numpy as np

from common import Context, load_snapshot, log, machine_info, rnd, target, threads, write_result


def run(ctx: Context) -> dict:
    result = {"name": "synth", "quick": ctx.quick, "machine": machine_info(), "load_before": load_snapshot(),
              "processes": 1}
    from asr.corpus import espeak_lib, synth

    if shutil.which("espeak-ng") is None or not espeak_lib.available():
        result["skipped"] = "espeak-ng or its library (libespeak-ng) is not installed here"
        result["targets"] = []
        log(f"  skipped: {result['skipped']}")
        write_result(ctx, "synth", result)
        return result
    cfg = synth.SynthConfig()
    voices = synth.discover_voices()
    groups = synth.split_variants(voices.variants, cfg)
    utts = list(islice(synth.plan_split("train", cfg, voices, groups["train"], set()), 6 if ctx.quick else 60))
    cases = [(f"{u.accent}+{u.variant}", u.text, u.speed, u.pitch) for u in utts]

    def program():
        return [synth.read_wav(synth.espeak_wav(*c))[0] for c in cases]

    def library():  # what synth-corpus calls: the library here (available, checked above), as float32
        return [synth.espeak_samples(*c)[0] for c in cases]

    a, b = program(), library()  # also the warm-up of both
    equal = all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))
    speech_s = sum(x.size for x in a) / synth.ESPEAK_RATE
    rounds = 1 if ctx.quick else 5  # alternating: this shared machine's speed drifts within seconds
    t_prog = t_lib = float("inf")
    with threads(1):
        for _ in range(rounds):
            t = time.perf_counter(); program(); t_prog = min(t_prog, time.perf_counter() - t)
            t = time.perf_counter(); library(); t_lib = min(t_lib, time.perf_counter() - t)
        # what synth-corpus does per utterance, with each engine: speak, trim, resample, write the FLAC
        t_render = {}
        for engine, available in (("program", lambda: False), ("library", lambda: True)):
            real = espeak_lib.available
            espeak_lib.available = available
            try:
                with tempfile.TemporaryDirectory() as d:
                    jobs = [synth.Job(f"{d}/{i}.flac", *c, cfg.sample_rate, cfg.max_silence)
                            for i, c in enumerate(cases)]
                    t = time.perf_counter()
                    for job in jobs:
                        synth.render(job)
                    t_render[engine] = time.perf_counter() - t
            finally:
                espeak_lib.available = real
    n = len(cases)
    result.update({
        "sentences": n, "speech_s": rnd(speech_s), "samples_equal": equal,
        "program_ms_per_sentence": rnd(1000 * t_prog / n), "library_ms_per_sentence": rnd(1000 * t_lib / n),
        "speedup": rnd(t_prog / t_lib),
        "program_speech_per_s": rnd(speech_s / t_prog), "library_speech_per_s": rnd(speech_s / t_lib),
        "render_program_ms_per_utt": rnd(1000 * t_render["program"] / n),
        "render_library_ms_per_utt": rnd(1000 * t_render["library"] / n),
        "render_speedup": rnd(t_render["program"] / t_render["library"]),
    })
    log(f"  {n} sentences, {speech_s:.0f} s of speech, 1 process: program {1000 * t_prog / n:.1f} ms per sentence, "
        f"library {1000 * t_lib / n:.1f} ms: {t_prog / t_lib:.2f}x; samples equal: {equal}")
    log(f"  per utterance with trim, resample and FLAC: program {1000 * t_render['program'] / n:.1f} ms, "
        f"library {1000 * t_render['library'] / n:.1f} ms: {t_render['program'] / t_render['library']:.2f}x")
    result["targets"] = [target("espeak-ng library over the program, per sentence", rnd(t_prog / t_lib), 1.0, True,
                                "x"),
                         target("library samples equal to the program's (1 = all)", float(equal), 1.0, True)]
    result["load_after"] = load_snapshot()
    write_result(ctx, "synth", result)
    return result
