"""synth_digits: speaker-disjoint splits, truthful transcripts, LibriSpeech layout, determinism, re-runs."""

import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.corpus.digits import SPLITS, WORDS, DigitsConfig, scan_fsdd, split_recordings, synth_digits
from asr.corpus.librispeech import prepare_librispeech
from asr.errors import UserError
from asr.manifest import read_manifest
from conftest import need

SMALL = DigitsConfig(train_utterances=24, dev_utterances=8, test_utterances=8, tts_voices=0, flite_voices=())


@pytest.fixture(scope="module")
def corpus(fsdd, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    synth_digits(fsdd, out, SMALL, progress=False)
    return out / "LibriSpeech"


def sources(root: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (root / split / "SOURCES.jsonl").read_text().splitlines()]


def transcripts(root: Path, split: str) -> dict[str, str]:
    return {uid: text for t in sorted((root / split).glob("*/*/*.trans.txt"))
            for uid, _, text in (line.partition(" ") for line in t.read_text().splitlines())}


def test_splits_are_speaker_and_recording_disjoint(corpus):
    speakers = {s: {src["speaker"] for src in sources(corpus, s)} for s in SPLITS}
    assert speakers["digits-test"] == {"george"}
    assert "george" not in speakers["digits-train"] | speakers["digits-dev"]
    used = {s: {r for src in sources(corpus, s) for r in src["recordings"]} for s in SPLITS}
    assert not used["digits-train"] & used["digits-test"] and not used["digits-train"] & used["digits-dev"]
    # Numeric speaker folders follow DIGITS-SPEAKERS.TXT; the test speaker's folder is nowhere else.
    ids = dict(line.split()[::-1] for line in (corpus / "DIGITS-SPEAKERS.TXT").read_text().splitlines())
    assert {p.name for p in (corpus / "digits-test").iterdir() if p.is_dir()} == {ids["george"]}
    assert not (corpus / "digits-train" / ids["george"]).exists()


def test_held_out_dev_speaker(fsdd):
    recs = scan_fsdd(fsdd)
    split = split_recordings(recs, replace(SMALL, dev_speaker="jackson"))
    spk = {s: {r.speaker for r in rs} for s, rs in split.items()}
    assert spk["digits-dev"] == {"jackson"} and spk["digits-test"] == {"george"}
    assert not spk["digits-train"] & {"jackson", "george"}
    default = split_recordings(recs, SMALL)
    assert all(r.index < SMALL.dev_holdout for r in default["digits-dev"])
    assert all(r.index >= SMALL.dev_holdout for r in default["digits-train"])
    assert sum(len(rs) for rs in default.values()) == len(recs)


def test_transcripts_match_the_digits_used(corpus):
    for split in SPLITS:
        text = transcripts(corpus, split)
        srcs = sources(corpus, split)
        assert len(srcs) == len(text) == {"digits-train": 24, "digits-dev": 8, "digits-test": 8}[split]
        for src in srcs:
            digits = [int(name.split("_")[0]) for name in src["recordings"]]
            assert text[src["id"]] == " ".join(WORDS[d] for d in digits)
            assert SMALL.min_digits <= len(digits) <= SMALL.max_digits
            assert {name.split("_")[1] for name in src["recordings"]} == {src["speaker"]}, "one speaker per string"


def test_audio_holds_the_recordings(corpus, fsdd):
    """16 kHz, 16-bit FLAC, at least as long as its recordings (at their speed) and at most that plus the pauses."""
    for split in SPLITS:
        for src in sources(corpus, split)[:4]:
            spk, ch, _ = src["id"].split("-")
            info = sf.info(str(corpus / split / spk / ch / f"{src['id']}.flac"))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            speech = sum(sf.info(str(fsdd / name)).duration for name in src["recordings"]) / src["speed"]
            pauses = (len(src["recordings"]) - 1) * SMALL.max_gap_ms / 1000 + 2 * SMALL.edge_ms / 1000
            assert speech - 0.01 <= info.duration <= speech + pauses + 0.01


def test_readable_by_prepare_librispeech(corpus, tmp_path):
    out = prepare_librispeech(corpus.parent, list(SPLITS), tmp_path, strict=True, progress=False)
    for split in SPLITS:
        utts = read_manifest(out[split])
        assert {u.id: u.text for u in utts} == transcripts(corpus, split)
        assert all(set(u.text.split()) <= set(WORDS) and u.duration > 0.3 for u in utts)


def test_deterministic_and_rerun_safe(corpus, fsdd, tmp_path, capsys):
    out = tmp_path / "again"
    synth_digits(fsdd, out, SMALL, progress=False)
    for split in SPLITS:
        made = (out / "LibriSpeech" / split / "SOURCES.jsonl").read_text()
        assert made == (corpus / split / "SOURCES.jsonl").read_text()
        assert transcripts(out / "LibriSpeech", split) == transcripts(corpus, split)
    first = sorted((corpus / "digits-train").glob("*/*/*.flac"))[0]
    again = out / "LibriSpeech" / first.relative_to(corpus)
    assert np.array_equal(sf.read(str(first))[0], sf.read(str(again))[0])
    # Re-running with the same config skips; another config is refused rather than mixed in.
    synth_digits(fsdd, out, SMALL, progress=False)
    assert "already made, skipping" in capsys.readouterr().err
    with pytest.raises(UserError, match="made with another configuration"):
        synth_digits(fsdd, out, replace(SMALL, seed=1), progress=False)
    other = tmp_path / "seed1"
    synth_digits(fsdd, other, replace(SMALL, seed=1, dev_utterances=1, train_utterances=1), progress=False)
    assert transcripts(other / "LibriSpeech", "digits-test") != transcripts(corpus, "digits-test")


def test_bad_speaker_names_found_ones(fsdd, tmp_path):
    with pytest.raises(UserError, match=r"test_speaker='nobody' is not in the recordings \(found: george, "):
        synth_digits(fsdd, tmp_path, replace(SMALL, test_speaker="nobody"), progress=False)
    with pytest.raises(UserError, match="no such folder"):
        synth_digits(tmp_path / "missing", tmp_path, SMALL, progress=False)


def test_cli(fsdd, tmp_path, capsys):
    assert main(["synth-digits", "--fsdd", str(fsdd), "--out", str(tmp_path), "--train-utts", "3", "--dev-utts", "2",
                 "--test-utts", "2", "--test-speaker", "lucas", "--tts-voices", "0", "--flite-voices", ""]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [summary[s]["utterances"] for s in SPLITS] == [3, 2, 2]
    assert {src["speaker"] for src in sources(tmp_path / "LibriSpeech", "digits-test")} == {"lucas"}


def test_download_fsdd_reuses_the_verified_download(tmp_path, monkeypatch):
    """download_fsdd goes through fetch + extract_atomically (tested in test_download.py); here: wiring and layout."""
    import hashlib

    import asr.corpus.digits as digits
    from http_mirror import Mirror

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        wav = io.BytesIO()
        sf.write(wav, np.zeros(800, dtype=np.float32), 8000, format="WAV")
        info = tarfile.TarInfo(f"free-spoken-digit-dataset-{digits.FSDD_VERSION}/recordings/3_ann_0.wav")
        info.size = len(wav.getvalue())
        tar.addfile(info, io.BytesIO(wav.getvalue()))
    payload = buf.getvalue()
    with Mirror({"/fsdd.tar.gz": payload}) as srv:
        monkeypatch.setattr(digits, "FSDD_URL", srv.url + "/fsdd.tar.gz")
        monkeypatch.setattr(digits, "FSDD_SHA256", hashlib.sha256(payload).hexdigest())
        rec = digits.download_fsdd(tmp_path, progress=False)
        assert [(r.digit, r.speaker, r.index) for r in scan_fsdd(rec)] == [(3, "ann", 0)]
        assert digits.download_fsdd(tmp_path, progress=False) == rec  # re-run: no second request
        assert len(srv.requests) == 1
    monkeypatch.setattr(digits, "FSDD_SHA256", "0" * 64)
    with Mirror({"/fsdd.tar.gz": payload}) as srv, pytest.raises(UserError, match="sha256 of the download"):
        monkeypatch.setattr(digits, "FSDD_URL", srv.url + "/fsdd.tar.gz")
        digits.download_fsdd(tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / f"free-spoken-digit-dataset-{digits.FSDD_VERSION}").exists()


def test_missing_shared_data_skips_with_a_clear_message(tmp_path):
    with pytest.raises(pytest.skip.Exception, match="shared test data not found at .*ASR_SHARED_DATA"):
        need(tmp_path / "fsdd" / "recordings")


def test_espeak_voices_only_in_training(fsdd, tmp_path):
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (tools/setup.sh installs it)")
    cfg = replace(SMALL, train_utterances=6, dev_utterances=1, test_utterances=1, tts_voices=2, tts_takes=1,
                  tts_share=1.0)
    synth_digits(fsdd, tmp_path, cfg, progress=False)
    root = tmp_path / "LibriSpeech"
    train = sources(root, "digits-train")
    assert {s["speaker"].startswith("tts-") for s in train} == {True}
    assert not any(s["speaker"].startswith("tts-") for split in SPLITS[1:] for s in sources(root, split))
    text = transcripts(root, "digits-train")
    for src in train:
        assert text[src["id"]] == " ".join(WORDS[int(name.split("_")[0])] for name in src["recordings"])


def test_flite_personas_only_in_training(fsdd, tmp_path):
    import shutil

    if shutil.which("flite") is None:
        pytest.skip("flite not installed (tools/setup.sh installs it)")
    cfg = replace(SMALL, train_utterances=8, dev_utterances=1, test_utterances=1, flite_voices=("slt", "kal16"),
                  flite_personas=2, flite_takes=1, flite_share=1.0)
    synth_digits(fsdd, tmp_path, cfg, progress=False)
    root = tmp_path / "LibriSpeech"
    train = sources(root, "digits-train")
    assert {s["speaker"].split("-")[0] for s in train} == {"flite"}
    assert {s["speaker"] for s in train} <= {f"flite-{v}-{p}" for v in ("slt", "kal16") for p in range(2)}
    assert not any(s["speaker"].startswith("flite-") for split in SPLITS[1:] for s in sources(root, split))
    text = transcripts(root, "digits-train")
    for src in train:
        assert text[src["id"]] == " ".join(WORDS[int(name.split("_")[0])] for name in src["recordings"])
    # Each persona speaks at its own pitch: the two slt personas' median f0 differ (pitch set per persona).
    import random

    import librosa

    from asr.corpus.digits import flite_recordings

    recs = flite_recordings(replace(cfg, flite_voices=("slt",), flite_personas=2), random.Random("0:flite"))
    assert len(recs) == 2 * 10 and all(r.audio[0].shape[0] > 0.2 * cfg.sample_rate for r in recs)
    f0 = {}
    for r in recs[::3]:  # 7 of the 20 clips, both personas (pyin is slow)
        pitch, _, _ = librosa.pyin(r.audio[0][:, 0], fmin=60, fmax=400, sr=cfg.sample_rate)
        f0.setdefault(r.speaker, []).append(np.nanmedian(pitch))
    a, b = (np.median(v) for v in f0.values())
    assert abs(np.log(a / b)) > 0.05, f0


def test_flite_errors_are_one_line(fsdd, tmp_path, monkeypatch):
    import random

    from asr.corpus import digits

    monkeypatch.setattr(digits.shutil, "which", lambda name: "/usr/bin/flite")  # the voice is checked before use
    with pytest.raises(UserError, match="unknown voice.*bogus.*choose from"):
        digits.flite_recordings(replace(SMALL, flite_voices=("bogus",)), random.Random(0))
    monkeypatch.setattr(digits.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="needs flite.*apt-get install flite"):
        digits.flite_recordings(replace(SMALL, flite_voices=("slt",)), random.Random(0))


def test_share_outside_0_1_is_a_user_error(fsdd, tmp_path):
    with pytest.raises(UserError, match="flite_share is a fraction.*from 0 to 1, not 1.5"):
        synth_digits(fsdd, tmp_path, replace(SMALL, flite_share=1.5), progress=False)
    assert main(["synth-digits", "--fsdd", str(fsdd), "--out", str(tmp_path), "--flite-share", "-0.1"]) != 0


def test_stamp_without_flite_is_unchanged(fsdd, tmp_path):
    """A corpus made before flite voices existed (no flite_* keys in its marker) is still recognized."""
    from asr.corpus.digits import COMPLETE_MARKER

    cfg = replace(SMALL, train_utterances=2, dev_utterances=1, test_utterances=1)
    synth_digits(fsdd, tmp_path, cfg, progress=False)
    stamp = json.loads((tmp_path / "LibriSpeech" / "digits-train" / COMPLETE_MARKER).read_text())
    assert not any(k.startswith("flite_") for k in stamp["config"]) and "tts_voices" in stamp["config"]
