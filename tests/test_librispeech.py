import json

import pytest
import soundfile as sf

from asr.corpus.librispeech import prepare_librispeech
from asr.errors import UserError
from asr.manifest import read_manifest


def test_prepare_real_sample(librispeech_sample, tmp_path):
    out = prepare_librispeech(librispeech_sample, ["dev-clean", "train-clean-360"], tmp_path, progress=False)
    dev = read_manifest(out["dev-clean"])
    assert [u.id for u in dev] == ["1272-128104-0000", "1272-128104-0001", "2412-153948-0000"]
    assert [u.id for u in read_manifest(out["train-clean-360"])] == ["8266-258262-0000", "8266-258262-0001"]
    root = librispeech_sample / "LibriSpeech" / "dev-clean"
    trans = {}
    for t in root.glob("*/*/*.trans.txt"):
        for line in t.read_text().splitlines():
            uid, _, text = line.partition(" ")
            trans[uid] = text
    for u in dev:
        assert u.text == trans[u.id].strip() and u.text == u.text.strip()
        info = sf.info(u.audio)
        assert u.duration == pytest.approx(info.frames / info.samplerate, abs=5e-4)  # to 1 ms
        assert u.duration == round(u.duration, 3)


def test_trailing_space_is_stripped(librispeech_sample, tmp_path):
    lines = [line for t in (librispeech_sample / "LibriSpeech").glob("*/*/*/*.trans.txt")
             for line in t.read_text().splitlines()]
    assert any(line != line.rstrip() for line in lines), "the sample should contain a line with a trailing space"
    out = prepare_librispeech(librispeech_sample, ["dev-clean", "train-clean-360"], tmp_path, progress=False)
    texts = [json.loads(l)["text"] for p in out.values() for l in p.read_text().splitlines()]
    assert all(t == t.strip() and "  " not in t for t in texts)


def make_subset(root, problems=True):
    import numpy as np

    ch = root / "LibriSpeech" / "train-x" / "11" / "22"
    ch.mkdir(parents=True)
    for i in range(3):
        sf.write(ch / f"11-22-000{i}.flac", np.zeros(1600, dtype=np.float32), 16000)
    lines = ["11-22-0000 HELLO THERE", "11-22-0001 ", "garbage line", "11-22-0009 NO AUDIO"]
    (ch / "11-22.trans.txt").write_text("\n".join(lines if problems else lines[:1]) + "\n")
    return root


def test_problems_reported_with_file_and_line(tmp_path, capsys):
    root = make_subset(tmp_path / "c")
    out = prepare_librispeech(root, ["train-x"], tmp_path / "m", progress=False)
    assert [u.id for u in read_manifest(out["train-x"])] == ["11-22-0000"]
    err = capsys.readouterr().err
    assert "11-22.trans.txt:2: empty transcript for 11-22-0001" in err
    assert "11-22.trans.txt:3: unreadable line" in err
    assert "11-22.trans.txt:4: audio for 11-22-0009 not found" in err
    assert "11-22-0002.flac: audio file has no transcript line" in err
    with pytest.raises(UserError, match="trans.txt:2: empty transcript"):
        prepare_librispeech(root, ["train-x"], tmp_path / "m2", strict=True, progress=False)


def test_missing_subset_names_what_exists(tmp_path):
    root = make_subset(tmp_path / "c", problems=False)
    with pytest.raises(UserError, match=r"no such subset \(found: train-x\)"):
        prepare_librispeech(root, ["dev-clean"], tmp_path / "m", progress=False)


def test_rerun_is_safe(tmp_path):
    root = make_subset(tmp_path / "c", problems=False)
    a = prepare_librispeech(root, ["train-x"], tmp_path / "m", progress=False)["train-x"].read_text()
    b = prepare_librispeech(root, ["train-x"], tmp_path / "m", progress=False)["train-x"].read_text()
    assert a == b
