"""benchmarks/run.py --quick: every benchmark runs end to end at minimal sizes and writes its JSON result.

The numbers of a quick run mean nothing; this only keeps the benchmark code from rotting.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KEYS = {
    "train": ["matmul_gflop_per_s", "runs", "lstm_alone", "profile"],
    "infer": ["model", "configs"],
    "features": ["ours_audio_per_s", "librosa_audio_per_s", "speedup", "max_abs_diff_log"],
    "beam": ["beam_width", "sources"],
    "loader": ["per_worker_audio_per_s", "decode_audio_per_s", "per_worker_waveforms_rir_audio_per_s",
               "workers_needed"],
    "synth": [],  # "skipped" without espeak-ng
    "gpu": [],  # "skipped" without CUDA, "runs" with it
    "gpu_e2e": [],
}


@pytest.mark.slow
def test_quick_benchmarks_write_their_results(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for name, keys in KEYS.items():
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert result["name"] == name and result["quick"] is True
        assert {"machine", "load_before", "targets"} <= result.keys()
        assert set(keys) <= result.keys(), f"{name}: missing {set(keys) - result.keys()}"
    train = json.loads((tmp_path / "train.json").read_text())
    assert all(r["ours"]["audio_per_s"] > 0 and r["reference"]["audio_per_s"] > 0 for r in train["runs"])
    from asr.precision import cpu_has_native_bf16  # bf16 rows only where the CPU computes bf16 natively

    bf16 = cpu_has_native_bf16()
    assert ("matmul_bf16_gflop_per_s" in train) == bf16
    assert all(r["ours_bf16"]["audio_per_s"] > 0 if bf16 else "ours_bf16" not in r for r in train["runs"])
    assert json.loads((tmp_path / "beam.json").read_text())["sources"][0]["pairs"]
    synth = json.loads((tmp_path / "synth.json").read_text())
    assert "skipped" in synth or (synth["samples_equal"] and synth["speedup"] > 0)
    gpu = json.loads((tmp_path / "gpu.json").read_text())
    assert "skipped" in gpu or gpu["runs"]
    assert (tmp_path / "summary.md").read_text().startswith("| benchmark |")


def test_nested_thread_limits_restore_the_outer_one():
    """A nested ``threads(1)`` (bench_train's one-thread LSTM figure) once left the rest of the run on 1 thread."""
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from common import threads
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    before = torch.get_num_threads()
    with threads(2):
        with threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


@pytest.mark.slow
def test_gpu_benchmark_dry_run_on_cpu_saves_as_it_goes():
    """bench_gpu.measure with the CPU as its device (tiny sizes): every configuration runs, and what is measured
    so far is handed to ``save`` after each one, the log-mel rate from the first on (a killed run keeps them)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import torch

    import bench_gpu

    saved = []
    out = bench_gpu.measure(torch.device("cpu"), True, save=lambda part: saved.append(
        (len(part["runs"]), len(part.get("runs_960", [])), part["features"]["device_audio_per_s"] > 0)))
    # 2 precisions x 2 LSTMs x 2 caps, then bf16 x 2 LSTMs at a larger cap
    assert len(out["runs"]) == 10 and all(r["audio_per_s"] > 0 for r in out["runs"])
    assert [(r["precision"], r["rnn_impl"], r["max_frames"]) for r in out["runs"][8:]] == [("bf16", "packed", 1600),
                                                                                           ("bf16", "flip", 1600)]
    # the 960 h model in bf16, packed and flip, at the largest cap of the sweep and then the larger one
    assert [(r["precision"], r["rnn_impl"], r["max_frames"]) for r in out["runs_960"]] == [
        ("bf16", "packed", 800), ("bf16", "flip", 800), ("bf16", "packed", 1600), ("bf16", "flip", 1600)]
    assert all(r["audio_per_s"] > 0 for r in out["runs_960"]) and out["best_960"] in out["runs_960"]
    assert saved == ([(n, 0, True) for n in range(1, 9)] + [(8, 1, True), (8, 2, True)]
                     + [(9, 2, True), (10, 2, True), (10, 3, True), (10, 4, True)])
    assert out["best"] in out["runs"] and out["features"]["cpu_thread_audio_per_s"] > 0
    assert out["train_clean_100_epoch_min"] == pytest.approx(100.6 * 3600 / out["best"]["audio_per_s"] / 60, rel=1e-2)
    assert [t["goal"] for t in out["targets"]] == [10_000, 2.0, 0.30, 0.30]


@pytest.mark.slow
def test_gpu_e2e_benchmark_dry_run_on_cpu(tmp_path):
    """bench_gpu_e2e.measure with the CPU as its device (tiny sizes): FLAC corpus, the synthetic-feature reference
    and one `asr train` epoch through the recipe's data config, with figures that add up."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import torch

    import bench_gpu_e2e

    saved = []
    out = bench_gpu_e2e.measure(torch.device("cpu"), True, tmp_path, save=saved.append)
    assert len(list((tmp_path / "flac").glob("*.flac"))) == out["utterances"] == 24
    assert out["synthetic_features"]["audio_per_s"] > 0 and len(out["runs"]) == 1
    run = out["runs"][0]
    assert run["num_workers"] == 2 and run["steps"] >= 2 and run["epoch_s"] > 0
    assert run["epoch_audio_per_s"] == pytest.approx(out["audio_s"] / run["epoch_s"], rel=1e-2)
    assert (tmp_path / "run-2" / "last.pt").is_file()
    assert [len(p.get("runs", [])) for p in saved] == [0, 1]
    again = bench_gpu_e2e.measure(torch.device("cpu"), True, tmp_path)  # the corpus is reused, not rewritten
    assert again["audio_s"] == out["audio_s"]


@pytest.mark.slow
def test_gpu_profile_dry_run_on_cpu(tmp_path):
    """benchmarks/gpu_profile.py --cpu-dry-run: both parts run at tiny sizes and write their figures."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_profile.py"), "--cpu-dry-run", "--out",
                           str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "gpu_profile.json").read_text())
    assert out["device"] == "cpu" and [r["rnn_impl"] for r in out["rows"]] == ["flip", "packed"]
    assert all(r["step_s"] > 0 and r["audio_per_s"] > 0 for r in out["rows"])
    assert len(out["graphs"]) == 1 and out["graphs"][0]["eager_s"] > 0 and "graph_s" not in out["graphs"][0]


@pytest.mark.slow
def test_gpu_rnn_ab_dry_run_on_cpu(tmp_path):
    """benchmarks/gpu_rnn_ab.py --cpu-dry-run: packed and flip timed in turn at tiny sizes, their ratio written."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_rnn_ab.py"), "--cpu-dry-run", "--out",
                           str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu_rnn_ab.json").read_text())["rows"]
    assert [r["cut_to_8"] for r in rows] == [False, True]
    for row in rows:
        assert row["packed_step_s"] > 0 and row["flip_step_s"] > 0 and row["kernels"] == {"packed": None, "flip": None}
        assert row["flip_vs_packed"] == pytest.approx(row["packed_step_s"] / row["flip_step_s"], rel=0.02)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_rnn_ab import cut_to_8

    assert [len(cut_to_8(list(range(n)))) for n in (1, 7, 8, 79, 200)] == [1, 1, 8, 72, 128]


@pytest.mark.slow
def test_gpu_variants_ab_dry_run_on_cpu(tmp_path):
    """benchmarks/gpu_variants_ab.py --cpu-dry-run: each variant timed in turn at tiny sizes, with its own settings
    (residual layers, /3 frames, fused AdamW), and its ratio to the settings before written."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_variants_ab.py"), "--cpu-dry-run", "--out",
                           str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads((tmp_path / "gpu_variants_ab.json").read_text())["rows"]
    names = ["before", "residual", "fused_adamw", "sub3", "all3"]
    assert list(row["round_medians"]) == names
    for name in names[1:]:
        assert row[f"{name}_vs_before"] == pytest.approx(row["before_step_s"] / row[f"{name}_step_s"], rel=0.02)
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_variants_ab import variant

    for name, residual, subsampling in [("before", False, 4), ("residual", True, 4), ("all3", True, 3)]:
        model, opt = variant(name, "librispeech_100", torch.device("cpu"))
        assert (model.cfg.residual, model.cfg.subsampling) == (residual, subsampling)
        assert opt.defaults["fused"]  # on a CPU always (make_optimizer's choice there)
