"""recipes/librispeech/run.sh end to end on a mini LibriSpeech served from 127.0.0.1: every stage's
outputs, skipping of completed stages on a re-run, and --stage/--stop-stage."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr.checkpoint import load_checkpoint, load_model
from http_mirror import Mirror, flac_bytes, tar_gz, upper_case_arpa

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "librispeech" / "run.sh"
TEXTS = ["HELLO WORLD", "GOOD MORNING", "SEE YOU SOON", "THANK YOU", "GOOD NIGHT", "HELLO AGAIN"]
SUBSETS = {"train-clean-100": TEXTS, "dev-clean": TEXTS[:2], "test-clean": TEXTS[2:4]}

pytestmark = pytest.mark.slow  # ~30 s on 2 idle CPU cores: a tiny training and ~8 asr start-ups (torch imports)


def subset_tarball(subset: str, texts: list[str], seed: int) -> bytes:
    """SUBSET.tar.gz laid out as OpenSLR's: LibriSpeech/SUBSET/SPK/CH/SPK-CH-UTT.flac + SPK-CH.trans.txt."""
    rng = np.random.default_rng(seed)
    members = {"LibriSpeech/README.TXT": b"a mini stand-in for LibriSpeech\n"}
    lines = []
    for i, text in enumerate(texts):
        t = np.arange(24000) / 16000  # 1.5 s: 37 output frames at 40 ms, enough for these transcripts
        wav = 0.2 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.02 * rng.standard_normal(t.size)
        members[f"LibriSpeech/{subset}/{seed}/7/{seed}-7-{i:04d}.flac"] = flac_bytes(wav.astype(np.float32))
        lines.append(f"{seed}-7-{i:04d} {text}")
    members[f"LibriSpeech/{subset}/{seed}/7/{seed}-7.trans.txt"] = ("\n".join(lines) + "\n").encode()
    return tar_gz(members)


TINY = ["model=tiny", "optim.epochs=2", "optim.warmup_steps=2", "data.max_frames=1000", "data.num_workers=0",
        "threads=2", "specaug=none"]  # a few seconds of training


def serve(tmp: Path, subsets: dict[str, list[str]], extra: dict[str, bytes] | None = None):
    """A Mirror of SUBSET.tar.gz files for ``subsets`` (and ``extra`` files) and an md5sum file of them (for
    --checksums)."""
    files = {f"/{s}.tar.gz": subset_tarball(s, texts, seed) for seed, (s, texts) in enumerate(subsets.items(), 11)}
    files.update(extra or {})
    md5 = tmp / "md5sum.txt"
    md5.write_text("".join(f"{hashlib.md5(b).hexdigest()}  {p[1:]}\n" for p, b in files.items()))
    return Mirror(files), md5


def official_lm(tmp: Path) -> bytes:
    """A 2-gram of TEXTS shaped like LibriSpeech's own LMs: upper-case words, gzip-compressed ARPA."""
    import gzip

    from asr.lm import build_lm

    (tmp / "lm.txt").write_text("\n".join(TEXTS) + "\n")
    arpa = build_lm(tmp / "lm.txt", 2, tmp / "lm.arpa", backend="python").path.read_text()
    return gzip.compress(upper_case_arpa(arpa).encode())


def run_sh(paths: dict, mirror: Mirror, md5: Path, *args: str) -> subprocess.CompletedProcess:
    """recipes/librispeech/run.sh with ``paths``' folders, downloading from ``mirror``; asserts that it succeeds."""
    cmd = ["bash", str(RECIPE), "--data", str(paths["data"]), "--corpus", str(paths["corpus"]),
           "--run", str(paths["run"]), "--mirror", mirror.url, "--checksums", str(md5), "--avg", "2",
           "--device", "cpu", *args]
    env = {**os.environ, "SKIP_SETUP": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """Runs the recipe; yields (run(args) -> CompletedProcess, paths, mirror)."""
    tmp = tmp_path_factory.mktemp("librispeech")
    paths = {"data": tmp / "data", "corpus": tmp / "corpus", "run": tmp / "run"}
    mirror, md5 = serve(tmp, SUBSETS)
    with mirror:
        def run(*args: str) -> subprocess.CompletedProcess:
            return run_sh(paths, mirror, md5, "--subsets", "dev-clean,test-clean", *args, *TINY)

        first = run()
        yield run, paths, mirror, first


def test_every_stage_writes_its_outputs(recipe):
    _, paths, mirror, first = recipe
    data, corpus, run = paths["data"], paths["corpus"], paths["run"]
    assert sorted(r["path"] for r in mirror.requests) == sorted(f"/{s}.tar.gz" for s in SUBSETS)
    for s in SUBSETS:  # stage 1: extracted with the download module's completion marker
        assert (corpus / "LibriSpeech" / s / ".complete").is_file()
        assert len(list((corpus / "LibriSpeech" / s).glob("*/*/*.flac"))) == len(SUBSETS[s])
    for s in SUBSETS:  # stage 2: one manifest per subset, plus the keep-best dev manifest
        utts = [json.loads(line) for line in (data / f"{s}.jsonl").read_text().splitlines()]
        assert sorted(u["text"] for u in utts) == sorted(SUBSETS[s])
        assert all(u["duration"] == pytest.approx(1.5) for u in utts)
    assert (data / "dev.jsonl").read_text() == (data / "dev-clean.jsonl").read_text()
    stats = json.loads((data / "train-clean-100.stats.json").read_text())  # stage 3
    assert stats["utterances"] == len(TEXTS) and len(stats["mean"]) == len(stats["std"]) == 80
    assert all(s > 0 for s in stats["std"])
    for name in ["best.pt", "last.pt", "epoch-1.pt", "epoch-2.pt", "avg.pt", ".trained"]:  # stage 4
        assert (run / name).is_file(), name
    avg = load_checkpoint(run / "avg.pt")
    assert avg["averaged_from"] == [str(run / "epoch-1.pt"), str(run / "epoch-2.pt")]
    model, tok, cfg = load_model(run / "avg.pt")
    assert cfg.model.hidden == 32 and tok.to_dict()["type"] == "char"
    import torch  # the recipe's statistics file, not the training set's own, normalized the features

    assert torch.allclose(model.norm.mean, torch.tensor(stats["mean"]))
    results = {}
    for s in ["dev-clean", "test-clean"]:  # stage 5
        lines = dict(line.split() for line in (run / "eval" / f"{s}.greedy.txt").read_text().splitlines())
        results[s] = lines
        assert set(lines) == {"WER", "CER"} and float(lines["WER"]) >= 0
        assert len((run / "eval" / f"{s}.greedy.jsonl").read_text().splitlines()) == 2
    table = (run / "RESULTS.md").read_text()  # stage 6
    assert "| subset | utterances | hours | WER greedy | CER greedy |" in table
    for s, r in results.items():
        assert f"| {s} | 2 | 0.00 | {r['WER']} | {r['CER']} |" in table
    assert "avg.pt" in table and "train-clean-100" in table
    assert table in first.stdout


def test_rerun_skips_completed_stages(recipe):
    run_recipe, paths, mirror, _ = recipe
    outputs = [paths["data"] / "train-clean-100.jsonl", paths["data"] / "train-clean-100.stats.json",
               paths["run"] / "best.pt", paths["run"] / "avg.pt", paths["run"] / "eval" / "dev-clean.greedy.txt"]
    before = {p: p.stat().st_mtime_ns for p in outputs}
    requests = len(mirror.requests)
    p = run_recipe()
    assert len(mirror.requests) == requests, "nothing is downloaded again"
    assert {p: p.stat().st_mtime_ns for p in outputs} == before
    for n in range(1, 6):
        assert any(line.startswith(f"stage {n}:") and "skipping" in line for line in p.stderr.splitlines()), n
    assert "epoch 1/" not in p.stderr


def test_stage_and_stop_stage_select_stages(recipe):
    run_recipe, paths, _, _ = recipe
    run = paths["run"]
    (run / "eval" / "test-clean.greedy.txt").unlink()
    report = run / "RESULTS.md"
    report_before, dev_before = report.stat().st_mtime_ns, (run / "eval" / "dev-clean.greedy.txt").stat().st_mtime_ns
    p = run_recipe("--stage", "5", "--stop-stage", "5")
    assert (run / "eval" / "test-clean.greedy.txt").is_file(), "stage 5 evaluated the missing subset again"
    assert (run / "eval" / "dev-clean.greedy.txt").stat().st_mtime_ns == dev_before
    assert report.stat().st_mtime_ns == report_before, "stage 6 did not run"
    assert not any(line.startswith(("stage 1:", "stage 2:", "stage 3:", "stage 4:")) for line in p.stderr.splitlines())
    run_recipe("--stage", "6")
    assert report.stat().st_mtime_ns > report_before


def test_mini_librispeech_with_the_official_lm(tmp_path):
    """--train-set train-clean-5 (mini LibriSpeech) evaluates on dev-clean-2 and trains conf/librispeech_mini.yaml
    (the 3x256 model with log-mels cached), not the 960 h config that any other training set gets; --lm with the
    name of one of LibriSpeech's LMs downloads it in stage 1, lower-cased, and stage 5 beam-searches with it."""
    paths = {"data": tmp_path / "data", "corpus": tmp_path / "corpus", "run": tmp_path / "run"}
    lm = {"/3-gram.pruned.1e-7.arpa.gz": official_lm(tmp_path)}
    mirror, md5 = serve(tmp_path, {"train-clean-5": TEXTS, "dev-clean-2": TEXTS[:2]}, extra=lm)
    with mirror:
        p = run_sh(paths, mirror, md5, "--train-set", "train-clean-5", "--lm", "3-gram.pruned.1e-7", *TINY)
    assert sorted(r["path"] for r in mirror.requests) == ["/3-gram.pruned.1e-7.arpa.gz", "/dev-clean-2.tar.gz",
                                                          "/train-clean-5.tar.gz"]
    assert (paths["data"] / "dev.jsonl").read_text() == (paths["data"] / "dev-clean-2.jsonl").read_text()
    assert "stage 4: train (librispeech_mini)" in p.stderr
    cfg = load_checkpoint(paths["run"] / "best.pt")["config"]
    assert cfg["data"]["cache_features"] is True
    assert cfg["data"]["stats"] == str(paths["data"] / "train-clean-5.stats.json")
    assert cfg["keep_epochs"] == 2 and cfg["model"]["hidden"] == 32  # the recipe's --avg and the test's model=tiny
    arpa = (paths["corpus"] / "librispeech-lm" / "3-gram.pruned.1e-7.arpa").read_text()
    assert "\thello world" in arpa and "HELLO" not in arpa
    beam = dict(line.split() for line in (paths["run"] / "eval" / "dev-clean-2.beam.txt").read_text().splitlines())
    assert set(beam) == {"WER", "CER"}
    tuned = paths["run"] / "eval" / "beam_tuned.yaml"  # the LM's weights, tuned on the dev subset first
    assert "lm_weight:" in tuned.read_text() and "tuned on up to 500 utterances of dev-clean-2" in p.stderr
    assert "| dev-clean-2 | 2 | 0.00 |" in p.stdout and "WER beam" in p.stdout
