"""End to end on CPU: train a tiny model, resume, evaluate, transcribe through the CLI."""

import csv
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import asr.train
from asr.checkpoint import build_model, describe, load_checkpoint, load_model
from asr.cli import main
from asr.config import compose, to_dataclass
from asr.data import UtteranceDataset, WaveBatch
from asr.decode import GreedyDecoder
from asr.errors import UserError
from asr.evaluate import evaluate
from asr.features import LogMel
from asr.manifest import read_manifest
from asr.train import StopRequested, train
from conftest import tiny_overrides


def test_loss_decreases_and_run_dir_complete(tiny_model):
    run = tiny_model.parent
    for name in ["best.pt", "last.pt", "config.yaml", "train.csv", "dev.csv", "curves.png", "starts.jsonl"]:
        assert (run / name).is_file(), name
    (start,) = [json.loads(line) for line in open(run / "starts.jsonl")]
    assert start["torch"] == torch.__version__ and start["device"] == "cpu" and start["step"] == 0
    rows = list(csv.DictReader(open(run / "train.csv")))
    assert len(rows) >= 6 and all(np.isfinite(float(r["loss"])) for r in rows)
    assert [int(r["step"]) for r in rows] == list(range(1, len(rows) + 1))
    assert len(list(csv.DictReader(open(run / "dev.csv")))) == 2
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert "optimizer" not in best and "rng" not in best and "optimizer" in last  # best.pt: for inference
    assert best["train_state"]["best_wer"] == last["train_state"]["best_wer"]
    assert (run / "best.pt").stat().st_size < 0.6 * (run / "last.pt").stat().st_size


def test_training_lowers_dev_loss(tiny_model, digit_manifests):
    """The trained model's CTC loss on held-out data is well below the untrained model's."""
    model, tok, cfg = load_model(tiny_model)
    ds = UtteranceDataset(read_manifest(digit_manifests[1]), LogMel(cfg.features), tok)
    trained = evaluate(model, ds, GreedyDecoder(tok), torch.device("cpu")).loss
    untrained = build_model(cfg, tok)
    untrained.norm.load_state_dict(model.norm.state_dict())
    initial = evaluate(untrained, ds, GreedyDecoder(tok), torch.device("cpu")).loss
    assert trained < 0.8 * initial


def test_sigterm_then_resume_matches_uninterrupted(digit_manifests, tmp_path, monkeypatch):
    """SIGTERM mid-epoch writes a checkpoint; resuming reaches the same weights as a run
    that was never interrupted (bitwise on CPU: same batch order, optimizer and RNG state)."""
    train_m, dev_m = digit_manifests
    straight, resumed = tmp_path / "a", tmp_path / "b"
    overrides = ["data.max_frames=3000"]
    train(compose(tiny_overrides(straight, train_m, dev_m, epochs=2) + overrides))

    calls = {"n": 0}
    real_step = asr.train._step

    def step_then_sigterm(*args, **kw):
        out = real_step(*args, **kw)
        calls["n"] += 1
        if calls["n"] == 7:  # mid-way through the first epoch
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(asr.train, "_step", step_then_sigterm)
    with pytest.raises(StopRequested, match="resume"):
        train(compose(tiny_overrides(resumed, train_m, dev_m, epochs=2) + overrides))
    monkeypatch.setattr(asr.train, "_step", real_step)
    first = load_checkpoint(resumed / "last.pt")
    assert first["train_state"]["step"] == 7 and first["train_state"]["batch"] > 0  # stopped mid-epoch
    train(compose(tiny_overrides(resumed, train_m, dev_m, epochs=2) + overrides))
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(resumed / "last.pt")
    assert a["train_state"]["step"] == b["train_state"]["step"] > first["train_state"]["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    steps = [int(r["step"]) for r in csv.DictReader(open(resumed / "train.csv"))]
    assert steps == sorted(set(steps))  # resumed rows continue, none doubled
    starts = [json.loads(line) for line in open(resumed / "starts.jsonl")]  # the first start and the resume
    stop = first["train_state"]
    assert [(s["epochs_done"], s["batch"], s["step"]) for s in starts] == [(0, 0, 0), (stop["epoch"], stop["batch"], 7)]


def test_eval_cli(tiny_model, digit_manifests, tmp_path, capsys):
    report = tmp_path / "report.jsonl"
    assert main(["eval", "--model", str(tiny_model), "--manifest", str(digit_manifests[1]),
                 "--report", str(report)]) == 0
    out, err = capsys.readouterr()
    out = out.splitlines()
    assert out[0].startswith("WER ") and out[1].startswith("CER ")
    n = len(digit_manifests[1].read_text().splitlines())
    assert re.search(rf"utterances {n} \(0\.\d\d h\), decoded in [\d.]+ s \(real-time factor 0\.\d{{4}},", err)
    wer = float(out[0].split()[1])
    rows = [json.loads(l) for l in report.read_text().splitlines()]
    assert len(rows) == len(digit_manifests[1].read_text().splitlines())
    assert {"id", "ref", "hyp", "word_errors", "ref_words"} <= set(rows[0])
    assert wer == pytest.approx(100 * sum(r["word_errors"] for r in rows) / sum(r["ref_words"] for r in rows), abs=0.01)
    # the same with 2 audio-reading worker processes: the same report, row for row
    assert main(["eval", "--model", str(tiny_model), "--manifest", str(digit_manifests[1]),
                 "--report", str(tmp_path / "workers.jsonl"), "--workers", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == out[:2]
    assert (tmp_path / "workers.jsonl").read_text() == report.read_text()


def test_eval_several_manifests(tiny_model, digit_manifests, tmp_path, capsys):
    """One call, two manifests (ESPnet-style test-clean + test-other): a block per manifest with the figures a
    call per manifest gives, and a report each beside the model."""
    import shutil

    model = tmp_path / "m" / "best.pt"
    model.parent.mkdir()
    shutil.copy(tiny_model, model)
    dev, half = digit_manifests[1], tmp_path / "half.jsonl"
    half.write_text("".join(dev.read_text().splitlines(keepends=True)[::2]))
    singles = []
    for m in (dev, half):
        assert main(["eval", "--model", str(model), "--manifest", str(m)]) == 0
        singles.append(capsys.readouterr().out.splitlines())
    alone = {m: (model.parent / f"eval-{m.stem}.jsonl").read_text() for m in (dev, half)}
    assert main(["eval", "--model", str(model), "--manifest", str(dev), str(half)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"== {dev}", *singles[0], f"== {half}", *singles[1]]
    assert {m: (model.parent / f"eval-{m.stem}.jsonl").read_text() for m in (dev, half)} == alone
    assert main(["eval", "--model", str(model), "--manifest", str(dev), str(half), "--report", "r.jsonl"]) == 2
    assert "--report names one report" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / half.name
    shutil.copy(half, twin)
    assert main(["eval", "--model", str(model), "--manifest", str(half), str(twin)]) == 2
    assert "manifests with the same name (half)" in capsys.readouterr().err


def test_transcribe_real_and_generated_audio(tiny_model, librispeech_sample, fsdd, tmp_path, capsys):
    flac = sorted(librispeech_sample.rglob("*.flac"))[0]
    wav8k = sorted(fsdd.glob("*.wav"))[0]
    hifi = tmp_path / "stereo44k.flac"
    t = np.arange(44100) / 44100
    sf.write(hifi, np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1) * 0.3, 44100,
             subtype="PCM_24")
    assert main(["transcribe", "--model", str(tiny_model), str(flac), str(wav8k), str(hifi)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [l.split("\t")[0] for l in lines] == [str(flac), str(wav8k), str(hifi)]
    assert main(["transcribe", "--model", str(tiny_model), "--format", "json", str(wav8k)]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["file"] == str(wav8k) and isinstance(obj["text"], str) and obj["duration"] > 0


@pytest.mark.parametrize("args, message", [
    (["transcribe", "--model", "MODEL", "/no/such.wav"], "/no/such.wav: no such audio file"),
    (["transcribe", "--model", "/no/model.pt", "x.wav"], "/no/model.pt: no such checkpoint"),
    (["eval", "--model", "MODEL", "--manifest", "/no/m.jsonl"], "/no/m.jsonl: no such manifest"),
    (["eval", "--threads", "-1", "--model", "MODEL", "--manifest", "/no/m.jsonl"], "--threads -1: use 0"),
    (["train", "model.hiden=3"], "hiden"),
])
def test_user_errors_one_line_no_traceback(tiny_model, args, message):
    args = [str(tiny_model) if a == "MODEL" else a for a in args]
    p = subprocess.run([sys.executable, "-m", "asr.cli", *args], capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    errors = [l for l in p.stderr.splitlines() if l.startswith("error:")]
    assert errors and message in errors[0]


def test_eval_by_speaker(tiny_model, digit_manifests, tmp_path, capsys):
    lines = digit_manifests[1].read_text().splitlines()
    manifest, report = tmp_path / "two-speakers.jsonl", tmp_path / "report.jsonl"
    utts = [{**json.loads(l), "id": f"{1 + i % 2}-0-{i:04d}"} for i, l in enumerate(lines)]  # speakers 1 and 2
    manifest.write_text("".join(json.dumps(u) + "\n" for u in utts))
    assert main(["eval", "--model", str(tiny_model), "--manifest", str(manifest), "--report", str(report),
                 "--by-speaker"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split() == ["speaker", "utts", "words", "WER", "%", "CER", "%"]
    table = {f[0]: f[1:] for f in (line.split() for line in out[3:])}
    rows = [json.loads(l) for l in report.read_text().splitlines()]
    assert set(table) == {"1", "2"}
    for spk, (n, words, wer, _cer) in table.items():
        mine = [r for r in rows if r["id"].startswith(f"{spk}-")]
        assert int(n) == len(mine) and int(words) == sum(r["ref_words"] for r in mine)
        assert float(wer) == pytest.approx(100 * sum(r["word_errors"] for r in mine) / int(words), abs=0.01)
    assert float(table[out[3].split()[0]][2]) >= float(table[out[4].split()[0]][2]), "worst speaker first"


def test_eval_prints_the_most_frequent_errors(tiny_model, digit_manifests, tmp_path, capsys):
    report = tmp_path / "report.jsonl"
    assert main(["eval", "--model", str(tiny_model), "--manifest", str(digit_manifests[1]), "--report", str(report),
                 "--errors", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert [line.split(" (top 3): ")[0] for line in out[2:]] == ["substitutions", "deletions", "insertions"]
    for line, key in zip(out[2:], ("sub", "del", "ins")):
        listed = line.split(": ", 1)[1]
        counts = [] if listed == "none" else [int(x.rsplit("(", 1)[1].rstrip(")")) for x in listed.split(", ")]
        assert len(counts) <= 3 and counts == sorted(counts, reverse=True)
        assert sum(counts) <= sum(r[key] for r in rows) and (counts or not sum(r[key] for r in rows))


def test_features_on_device_trains_like_the_loader(digit_manifests, tmp_path, monkeypatch):
    """data.features_on=device (log-mels per batch of padded waveforms, on the training device: the CPU here)
    follows the loader path's loss curve, weights and dev pass: the features are equal up to float rounding."""
    train_m, dev_m = digit_manifests
    calls = {"loader": 0, "device": 0}
    featurized = set()  # utterance ids whose log-mels were computed on the device
    real = WaveBatch.featurize
    runs = {}
    for where in ("loader", "device"):
        def counted(self, logmel, where=where):
            calls[where] += 1
            featurized.update(self.ids)
            return real(self, logmel)

        monkeypatch.setattr(WaveBatch, "featurize", counted)
        run = tmp_path / where
        train(compose(tiny_overrides(run, train_m, dev_m, epochs=1) +
                      ["data.cache_features=false", f"data.features_on={where}", "data.num_workers=0"]))
        runs[where] = run
    assert calls["loader"] == 0 and calls["device"] > 0
    dev_ids = {json.loads(line)["id"] for line in open(dev_m)}
    assert dev_ids <= featurized  # the dev pass computed its log-mels on the device too
    loss = {w: [float(r["loss"]) for r in csv.DictReader(open(r / "train.csv"))] for w, r in runs.items()}
    assert len(loss["loader"]) == len(loss["device"]) >= 3
    assert loss["device"] == pytest.approx(loss["loader"], rel=1e-3)
    dev = {w: [(float(r["loss"]), float(r["wer"])) for r in csv.DictReader(open(r / "dev.csv"))]
           for w, r in runs.items()}
    assert len(dev["device"]) == 1 and dev["device"][0] == pytest.approx(dev["loader"][0], rel=1e-3)  # dev pass too
    a, b = (load_checkpoint(r / "last.pt")["model"] for r in runs.values())
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-3), k


@pytest.mark.parametrize("overrides, message", [
    (["data.features_on=gpu"], "expected auto, loader or device"),
    (["data.features_on=device", "data.cache_features=true"], "set data.cache_features=false"),
])
def test_features_on_bad_settings(digit_manifests, tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        train(compose(tiny_overrides(tmp_path / "run", *digit_manifests, epochs=1) + overrides))


def test_patience_stops_a_run_that_no_longer_improves(digit_manifests, tmp_path, capsys):
    """optim.patience=2 with a learning rate too small to change anything: the dev WER of epoch 1 is never
    beaten, so the run stops after epoch 3 of 6; run again, it stops at once instead of training on."""
    run = tmp_path / "run"
    overrides = tiny_overrides(run, *digit_manifests, epochs=6) + ["optim.lr=1e-12", "optim.patience=2"]
    train(compose(overrides))
    dev = list(csv.DictReader(open(run / "dev.csv")))
    assert len(dev) == 3 and len({r["wer"] for r in dev}) == 1
    assert load_checkpoint(run / "last.pt")["train_state"]["since_best"] == 2
    assert "no better dev WER for 2 epochs (optim.patience): stopping after epoch 3 of 6" in capsys.readouterr().err
    train(compose(overrides))
    assert len(list(csv.DictReader(open(run / "dev.csv")))) == 3
    assert "stopping after epoch 3 of 6" in capsys.readouterr().err


def test_time_budget_decays_by_time_stops_and_resumes(digit_manifests, tmp_path, monkeypatch, capsys):
    """optim.time_budget_min: the cosine decay follows the time spent, training stops mid-epoch when the budget
    runs out (after a dev pass and checkpoints), a rerun trains no further, and a longer budget resumes at the
    same batch. Time is faked: each optimizer step takes one second, and nothing else takes any."""
    now = {"t": 0.0}
    monkeypatch.setattr(asr.train._Clock, "now", staticmethod(lambda: now["t"]))
    real_step = asr.train._step

    def one_second_step(*args, **kw):
        now["t"] += 1.0
        return real_step(*args, **kw)

    monkeypatch.setattr(asr.train, "_step", one_second_step)
    run = tmp_path / "run"
    overrides = tiny_overrides(run, *digit_manifests, epochs=50) + ["optim.final_lr_ratio=0.1"]
    train(compose(overrides + ["optim.time_budget_min=0.2"]))  # 12 s: 12 steps
    state = load_checkpoint(run / "last.pt")["train_state"]
    assert state["step"] == 12 and state["train_s"] == 12.0 and state["batch"] > 0  # stopped within an epoch
    dev = list(csv.DictReader(open(run / "dev.csv")))
    assert state["epoch"] < float(dev[-1]["epoch"]) < state["epoch"] + 1  # epochs done when the budget ran out
    assert "time budget spent: 0.2 min" in capsys.readouterr().err
    assert main(["info", "--model", str(run / "last.pt"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["training_min"] == 0.2 and info["time_budget_min"] == 0.2

    train(compose(overrides + ["optim.time_budget_min=0.2"]))  # spent: nothing more
    assert load_checkpoint(run / "last.pt")["train_state"]["step"] == 12
    assert len(list(csv.DictReader(open(run / "dev.csv")))) == len(dev)

    train(compose(overrides + ["optim.time_budget_min=0.3"]))  # 18 s: 6 steps more
    after = load_checkpoint(run / "last.pt")["train_state"]
    assert after["step"] == 18 and after["train_s"] == 18.0
    rows = list(csv.DictReader(open(run / "train.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 19))  # no step doubled
    starts = [json.loads(line) for line in open(run / "starts.jsonl")]
    assert [(s["epochs_done"], s["batch"], s["step"]) for s in starts[1:]] == [(state["epoch"], state["batch"], 12)] * 2
    # warm-up over 4 steps, then the decay: the step after k seconds gets the rate for the fraction k / budget
    o = compose(overrides).optim
    expected = [asr.train.lr_at(k, 10**6, o, spent=k / (12 if k < 12 else 18)) for k in range(18)]
    assert [float(r["lr"]) for r in rows] == pytest.approx(expected, rel=2e-3)
    assert float(rows[11]["lr"]) < 0.2 * o.lr < float(rows[12]["lr"])  # near its end, then a longer budget


def test_progress_bar_shows_time_left_and_budget_at_one_precision(monkeypatch):
    """The bar's ', L of B min left': both to 0.1 min (it read '9.8 of 9.77'), nothing without a budget."""
    now = {"t": 100.0}
    monkeypatch.setattr(asr.train._Clock, "now", staticmethod(lambda: now["t"]))
    clock = asr.train._Clock(0.0, 9.77 * 60, torch.device("cpu"))
    assert clock.left() == ", 9.8 of 9.8 min left"
    now["t"] += 4 * 60
    assert clock.left() == ", 5.8 of 9.8 min left"
    now["t"] += 60 * 60
    assert clock.left() == ", 0.0 of 9.8 min left"
    assert asr.train._Clock(0.0, 0.0, torch.device("cpu")).left() == ""


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_optimizer_is_fused_and_steps_as_the_default_adamw(device):
    """make_optimizer: AdamW's fused kernel on a CPU and on a GPU, with the same updates as the default
    implementation; the default's saved state loads into it (a run resumed after the change)."""
    import copy

    from asr.text import CharTokenizer
    from asr.train import make_optimizer

    cfg = to_dataclass(compose(["model=tiny"]))
    torch.manual_seed(0)
    a = build_model(cfg, CharTokenizer()).to(device)
    b = copy.deepcopy(a)
    plain = torch.optim.AdamW(b.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    fused = make_optimizer(a, cfg, torch.device(device))
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    before = [p.detach().clone() for p in a.parameters()]
    gen = torch.Generator().manual_seed(1)
    for i in range(4):
        for pa, pb in zip(a.parameters(), b.parameters()):
            pa.grad = torch.randn(pa.shape, generator=gen).to(device)
            pb.grad = pa.grad.clone()
        if i == 1:
            plain.step()  # the first two steps by the default alone, its state then loaded into the fused one
            a.load_state_dict(b.state_dict())
            fused.load_state_dict(copy.deepcopy(plain.state_dict()))  # as from a file: no tensor shared
            continue
        fused.step()
        plain.step()
    assert all(not torch.equal(pa, p0) for pa, p0 in zip(a.parameters(), before))  # every tensor was updated
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-7)


def test_version(capsys):
    """asr --version: the package's version, the same as the installed metadata (pyproject.toml)."""
    from importlib.metadata import version

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"asr {version('asr')}"


def test_init_from_starts_with_the_checkpoints_weights_and_statistics(tiny_model, digit_manifests, tmp_path):
    """init_from=CKPT (fine-tuning): the new run starts from CKPT's weights and normalization statistics, not
    from a random model and the new training set's statistics. With a learning rate of 1e-9 one epoch leaves
    them where they were; data.stats, when given, replaces the statistics."""
    from asr.checkpoint import describe
    from asr.config import FeatureConfig
    from asr.stats import load_stats

    base = tiny_overrides(tmp_path / "ft", *digit_manifests, epochs=1) + [
        f"init_from={tiny_model}", "optim.lr=1e-9", "optim.weight_decay=0", "model.forget_bias=1.0"]
    train(compose(base))
    assert describe(tmp_path / "ft" / "best.pt")["init_from"] == str(tiny_model)  # `asr info` says so
    assert "init_from" not in describe(tiny_model)
    start, tuned = load_checkpoint(tiny_model)["model"], load_checkpoint(tmp_path / "ft" / "last.pt")["model"]
    assert tuned.keys() == start.keys()
    for k in start:
        assert torch.allclose(tuned[k].float(), start[k].float(), atol=1e-5), k
    stats = tmp_path / "stats.json"  # of other audio than the checkpoint's statistics (its training set)
    assert main(["stats", "--manifest", str(digit_manifests[1]), "--out", str(stats)]) == 0
    mean, _ = load_stats(str(stats), FeatureConfig())
    train(compose(base + [f"run_dir={tmp_path / 'ft2'}", f"data.stats={stats}"]))
    tuned2 = load_checkpoint(tmp_path / "ft2" / "last.pt")["model"]
    assert torch.allclose(tuned2["norm.mean"], mean.float()) and not torch.allclose(tuned2["norm.mean"],
                                                                                   start["norm.mean"])
    assert torch.allclose(tuned2["out.weight"], start["out.weight"], atol=1e-5)


def test_accum_grad_takes_one_step_per_group_of_batches(tiny_model, digit_manifests, tmp_path, capsys):
    """optim.accum_grad=3: an optimizer step (a train.csv row, a learning-rate step) per 3 batches, the
    epoch's last group possibly shorter; the run sees the same batches as the plain one."""
    plain = load_checkpoint(tiny_model.parent / "last.pt")["train_state"]  # 2 epochs, a step per batch
    assert plain["skipped"] == 0
    per_epoch = plain["step"] // 2
    train(compose(tiny_overrides(tmp_path / "acc", *digit_manifests) + ["optim.accum_grad=3"]))
    state = load_checkpoint(tmp_path / "acc" / "last.pt")["train_state"]
    assert state["step"] == 2 * -(-per_epoch // 3) and state["epoch"] == 2
    assert f"{per_epoch} batches/epoch ({-(-per_epoch // 3)} optimizer steps of 3)" in capsys.readouterr().err
    rows = list(csv.DictReader(open(tmp_path / "acc" / "train.csv")))
    assert len(rows) == state["step"] and all(np.isfinite(float(r["loss"])) for r in rows)


def test_subsampling_3_trains_and_transcribes_at_30_ms_frames(digit_manifests, tmp_path):
    """model.subsampling=3 (the main job's model): it trains, its checkpoint keeps the setting, and transcription
    reads 30 ms output frames: ceil(T / 3) of them, also when the file is read in windows."""
    from asr.audio import load_audio
    from asr.longform import LongFormConfig
    from asr.transcribe import Recognizer

    run = tmp_path / "run"
    train(compose(tiny_overrides(run, *digit_manifests, epochs=1) + ["model.subsampling=3"]))
    assert load_checkpoint(run / "last.pt")["config"]["model"]["subsampling"] == 3
    assert "(3x fewer frames: 30 ms)" in describe(run / "last.pt")["model"]  # asr info
    rec = Recognizer(run / "last.pt")
    assert rec.frame_s == pytest.approx(0.03)
    audio = read_manifest(digit_manifests[1])[0].audio
    frames = rec.logmel(load_audio(audio, rec.sample_rate)).shape[0]
    whole = rec.transcribe(audio, keep_log_probs=True).log_probs
    assert whole.shape[0] == -(-frames // 3)
    windowed = Recognizer(run / "last.pt", longform=LongFormConfig(window_s=0.3, context_s=0.06, threshold_s=0.1))
    assert windowed.transcribe(audio, keep_log_probs=True).log_probs.shape == whole.shape  # none lost or doubled


def test_curves_of_a_run_whose_steps_were_all_skipped_say_so_without_warnings(tmp_path):
    """A run whose every step was skipped so far (fp16 overflows while the loss scale settles, as on a GPU with a
    one-batch epoch) has no train.csv rows: the plot is still written, saying so, and matplotlib warns of nothing."""
    import warnings

    from asr.metrics_log import plot_curves

    (tmp_path / "train.csv").write_text("step,epoch,loss,lr,grad_norm,audio_s_per_s,time\n")
    (tmp_path / "dev.csv").write_text("step,epoch,loss,wer,cer\n1,1,605.3,1.0,0.997\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = plot_curves(tmp_path)
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
