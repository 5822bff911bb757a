"""Run the benchmarks: ``python benchmarks/run.py [--quick] [--only NAME,...] [--out benchmarks/results]``.

Each benchmark measures our code and a reference side by side in this one process (or in
subprocesses it starts), prints its figures and ratios, and writes ``OUT/NAME.json``.
``OUT/summary.md`` gets one table of the headline numbers. Timings mean something only on an
otherwise idle machine: the load average before and after each benchmark is in its JSON;
``--wait-idle S`` waits up to S seconds, before each one, until other processes leave the CPU.

Benchmarks: train (training-step throughput, MFU, profile), infer (real-time factor, memory),
features (log-mel vs librosa), beam (our beam search vs pyctcdecode), loader (decode +
features per worker), synth (espeak-ng's library against its program, for the embedded corpus),
gpu (CUDA only; skipped without a GPU), gpu_e2e (asr train on FLAC files
on the GPU: does the loader keep up? CUDA only).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
from common import Context, load_snapshot, log, machine_info, rnd, wait_for_idle  # noqa: E402

ORDER = ["train", "infer", "features", "beam", "loader", "synth", "gpu", "gpu_e2e"]  # loader reads train's result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="minimal sizes: checks that everything runs (seconds)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(ORDER)}")
    ap.add_argument("--out", default=str(HERE / "results"), help="directory for the JSON results")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for the multi-threaded measurements (default 2; 1 with --quick)")
    ap.add_argument("--model", default=None,
                    help="checkpoint for infer/beam (default: runs/demo/best.pt if present, else a random model)")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                    help="before each benchmark, wait up to S seconds until other processes use < 0.15 cores")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or ORDER
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    names = [n for n in ORDER if n in names]
    if args.quick:
        common.SNAPSHOT_S = 0.05
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # scratch (LMs, the 10-minute FLAC, a random checkpoint): reused between runs, kept out of the repository
    work = Path(tempfile.gettempdir()) / f"asr-benchmarks-{'quick' if args.quick else 'full'}"
    ctx = Context(quick=args.quick, out=out, work=work,
                  threads=args.threads or (1 if args.quick else 2), model=args.model, results={})
    ctx.work.mkdir(parents=True, exist_ok=True)
    m = machine_info()
    log(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}"
        f"{'; QUICK mode: sizes too small for the numbers to mean anything' if args.quick else ''}")
    for name in names:
        if args.wait_idle > 0:
            wait_for_idle(args.wait_idle)
        snap = load_snapshot()
        log(f"\n== {name} (load {snap['load1']}; other processes use {snap['others_cores']} cores"
            f"{': ' + ', '.join(snap['busy']) if snap['busy'] else ''})")
        t = time.perf_counter()
        module = importlib.import_module(f"bench_{name}")
        ctx.results[name] = module.run(ctx)
        log(f"   {name}: {time.perf_counter() - t:.1f} s, wrote {out / (name + '.json')}")
    # the table covers every result in OUT, this run's and earlier ones (each with its own load figures)
    everything = {n: json.loads((out / f"{n}.json").read_text()) for n in ORDER if (out / f"{n}.json").is_file()}
    summary = summarize(everything)
    from asr.io import atomic_write_text

    atomic_write_text(out / "summary.md", summary)
    log("\n" + summary)
    return 0


def summarize(results: dict) -> str:
    """One markdown table of the targets of the benchmarks run, with the load at measurement."""
    lines = ["| benchmark | figure | value | target | met | load: 1-min avg / others' cores |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lb = r.get("load_before", {})
        load = f"{lb.get('load1', '')} / {lb.get('others_cores', '')}"
        if r.get("skipped"):
            lines.append(f"| {name} | skipped: {r['skipped']} | | | | {load} |")
            continue
        for tg in r.get("targets", []):
            met = {True: "yes", False: "**no**", None: "n/a"}[tg["met"]]
            value = "n/a" if tg["value"] is None else f"{rnd(tg['value'])}{tg['unit']}"
            lines.append(f"| {name} | {tg['name']} | {value} | {tg['direction']} {tg['goal']}{tg['unit']} | {met} "
                         f"| {load} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

