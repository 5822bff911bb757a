import json

import numpy as np
import pytest

from asr.errors import UserError
from asr.manifest import Utterance, read_manifest, write_manifest


def test_round_trip(tmp_path):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"x")
    utts = [Utterance("u1", str(audio), 1.234, "HELLO WORLD"), Utterance("u2", str(audio), 0.5, "ÉCOLE")]
    path = tmp_path / "m.jsonl"
    assert write_manifest(path, utts) == 2
    assert read_manifest(path) == utts


def test_bad_lines_reported_with_file_and_line(tmp_path, capsys):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"x")
    good = {"id": "u1", "audio": str(audio), "duration": 1.0, "text": "HI"}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "id": "u2", "audio": str(tmp_path / "missing.wav")}),
        json.dumps({**good, "id": "u3", "text": "  123 "}),
        json.dumps(good),  # duplicate id
        json.dumps({**good, "id": "u4", "duration": "long"}),
        json.dumps({"id": "u5"}),
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n")
    utts = read_manifest(path)
    assert [u.id for u in utts] == ["u1"]
    err = capsys.readouterr().err
    assert "skipped 6 bad line(s)" in err
    for lineno, what in [(2, "malformed JSON"), (3, "audio file not found"), (4, "empty transcript"),
                         (5, "duplicate id"), (6, "field 'duration' has the wrong type"), (7, "missing field")]:
        assert f"m.jsonl:{lineno}: {what}" in err
    with pytest.raises(UserError, match=r"m.jsonl:2: malformed JSON"):
        read_manifest(path, strict=True)


def test_non_ascii_and_out_of_token_set_transcripts(tmp_path, capsys):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"x")
    lines = [{"id": "u1", "text": "Café NAÏVE"},  # accents fold: kept whole, nothing reported
             {"id": "u2", "text": "route 66 #1"},  # digits and symbols: dropped and named
             {"id": "u3", "text": "日本語"}]  # nothing left: a bad line
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({**d, "audio": str(audio), "duration": 1.0}) + "\n" for d in lines))
    utts = read_manifest(path)
    assert [u.id for u in utts] == ["u1", "u2"]
    err = capsys.readouterr().err
    assert "'6' (line 2), '#' (line 2), '1' (line 2)" in err and "'é'" not in err
    assert "m.jsonl:3: empty transcript" in err
    with pytest.raises(UserError, match="m.jsonl:3: empty transcript"):
        read_manifest(path, strict=True)


def test_missing_manifest(tmp_path):
    with pytest.raises(UserError, match="no such manifest"):
        read_manifest(tmp_path / "nope.jsonl")


def test_relative_audio_paths(tmp_path, monkeypatch):
    """A relative audio path is read from the working directory when the file is there, else from the
    manifest's folder: a manifest written beside its audio works from anywhere."""
    import soundfile as sf

    data = tmp_path / "data"
    (data / "wav").mkdir(parents=True)
    sf.write(data / "wav" / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    manifest = data / "m.jsonl"
    manifest.write_text(json.dumps({"id": "a", "audio": "wav/a.wav", "duration": 0.1, "text": "A"}) + "\n"
                        + json.dumps({"id": "b", "audio": "wav/missing.wav", "duration": 0.1, "text": "B"}) + "\n")
    monkeypatch.chdir(tmp_path)  # not the manifest's folder
    with pytest.raises(UserError, match=r"m.jsonl:2: audio file not found: wav/missing.wav \(neither in the "
                                        r"working directory nor in .*data\)"):
        read_manifest(manifest, strict=True)
    utts = read_manifest(manifest)
    assert [u.id for u in utts] == ["a"] and utts[0].audio == str(data / "wav" / "a.wav")
    monkeypatch.chdir(data)  # the working directory wins when the file is there
    assert read_manifest(manifest)[0].audio == "wav/a.wav"
