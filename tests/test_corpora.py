"""`asr prepare folder` (your own recordings with a transcript beside each) and `asr prepare commonvoice`
(a Common Voice language folder), on fixtures made here: ids, texts, durations, problems named with their file."""

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.corpus.commonvoice import prepare_commonvoice
from asr.corpus.folder import prepare_folder
from asr.errors import UserError
from asr.evaluate import speaker_of
from asr.manifest import read_manifest
from asr.text import normalize_text


def _tone(path, seconds, rate, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, **kw)


def _recordings(root):
    _tone(root / "spk1" / "a.wav", 1.0, 16000)
    (root / "spk1" / "a.txt").write_text("Hello,  World\n")
    _tone(root / "spk1" / "b.flac", 0.5, 8000)
    (root / "spk1" / "b.lab").write_text("second one")
    _tone(root / "spk2" / "C.MP3", 1.25, 44100, format="MP3")
    (root / "spk2" / "C.TXT").write_text("third\n")
    _tone(root / "spk2" / "no_text.wav", 0.3, 16000)
    (root / "spk2" / "no_audio.txt").write_text("orphan")
    _tone(root / "spk2" / "empty.wav", 0.3, 16000)
    (root / "spk2" / "empty.txt").write_text("  \n")
    (root / "spk2" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (root / "spk2" / "broken.txt").write_text("unreadable")


def test_prepare_folder_reads_each_recording_with_its_transcript(tmp_path, capsys):
    root = tmp_path / "mine"
    _recordings(root)
    path = prepare_folder(root, tmp_path / "m", progress=False)
    assert path == tmp_path / "m" / "mine.jsonl"
    utts = read_manifest(path)
    assert [u.id for u in utts] == ["spk1-a", "spk1-b", "spk2-C"]
    assert [u.text for u in utts] == ["Hello, World", "second one", "third"]  # as written, spaces collapsed
    assert [u.duration for u in utts] == pytest.approx([1.0, 0.5, 1.25], abs=5e-4)
    assert [speaker_of(u.id) for u in utts] == ["spk1", "spk1", "spk2"]
    err = capsys.readouterr().err
    assert "skipped 4 problem(s)" in err
    for what in ["no_text.wav: no transcript beside it (no_text.txt)", "no_audio.txt: transcript without an audio",
                 "empty.txt: empty transcript", "broken.wav: cannot read audio header"]:
        assert what in err, what


def test_prepare_folder_strict_and_clear_errors(tmp_path):
    root = tmp_path / "mine"
    _recordings(root)
    with pytest.raises(UserError, match=r"spk2/empty.txt: empty transcript \(and 2 more problems\)"):
        prepare_folder(root, tmp_path / "m", strict=True, progress=False)
    _tone(root / "spk1" / "a.flac", 0.2, 16000)  # a.wav and a.flac: one id for two files
    with pytest.raises(UserError, match=r"a.wav: same utterance id 'spk1-a' as .*a.flac; rename one"):
        prepare_folder(root, tmp_path / "m", strict=True, progress=False)
    (tmp_path / "silent").mkdir()
    with pytest.raises(UserError, match="silent: no audio files"):
        prepare_folder(tmp_path / "silent", tmp_path / "m", progress=False)
    with pytest.raises(UserError, match="nowhere: no such directory"):
        prepare_folder(tmp_path / "nowhere", tmp_path / "m", progress=False)


def test_prepare_folder_cli(tmp_path, capsys):
    root = tmp_path / "mine"
    _recordings(root)
    assert main(["prepare", "folder", "--root", str(root), "--out", str(tmp_path / "m"), "--name", "train"]) == 0
    assert capsys.readouterr().out.strip() == f"train\t{tmp_path / 'm' / 'train.jsonl'}"
    assert len(read_manifest(tmp_path / "m" / "train.jsonl")) == 3
    assert main(["prepare", "folder", "--root", str(root), "--out", str(tmp_path), "--subsets", "x"]) == 2
    assert "--subsets is for librispeech and commonvoice" in capsys.readouterr().err
    assert main(["prepare", "librispeech", "--root", str(root), "--out", str(tmp_path)]) == 2
    assert "librispeech needs --subsets" in capsys.readouterr().err


# A Common Voice 17 header (the column order differs between releases; only the names matter).
CV_HEADER = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
             "gender", "accents", "variant", "locale", "segment"]
SPK_A, SPK_B = "a1b2c3d4e5f6" + "0" * 116, "ffeeddccbbaa" + "1" * 116


def _cv_row(client, clip, sentence):
    row = dict.fromkeys(CV_HEADER, "")
    row.update(client_id=client, path=clip, sentence=sentence, locale="en")
    return "\t".join(row[c] for c in CV_HEADER)


def _common_voice(root):
    for i, seconds in [(1, 1.5), (2, 2.0), (3, 0.75)]:
        _tone(root / "clips" / f"common_voice_en_{i}.mp3", seconds, 48000, format="MP3")
    rows = [_cv_row(SPK_A, "common_voice_en_1.mp3", '"Hello," she said.'),
            _cv_row(SPK_B, "common_voice_en_2.mp3", "It's  two past ten"),
            _cv_row(SPK_B, "common_voice_en_3.mp3", "Café au lait"),
            _cv_row(SPK_A, "common_voice_en_9.mp3", "no such clip"),
            _cv_row(SPK_A, "common_voice_en_3.mp3", "   "),
            "a1b2c3\tonly_two_fields"]
    (root / "train.tsv").write_text("\t".join(CV_HEADER) + "\n" + "\n".join(rows) + "\n")
    old = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"]  # release 1-ish
    (root / "dev.tsv").write_text("\t".join(old) + "\n" + f"{SPK_A}\tcommon_voice_en_3.mp3\tShort one.\t2\t0"
                                  + "\t" * 3 + "\n")


def test_prepare_commonvoice_splits(tmp_path, capsys):
    root = tmp_path / "cv-corpus-17.0" / "en"
    _common_voice(root)
    out = prepare_commonvoice(root, ["train", "dev"], tmp_path / "m", progress=False)
    train, dev = read_manifest(out["train"]), read_manifest(out["dev"])
    assert [u.id for u in train] == ["a1b2c3d4e5f6-common_voice_en_1", "ffeeddccbbaa-common_voice_en_2",
                                     "ffeeddccbbaa-common_voice_en_3"]
    assert [speaker_of(u.id) for u in train] == ["a1b2c3d4e5f6", "ffeeddccbbaa", "ffeeddccbbaa"]
    assert train[0].text == '"Hello," she said.' and normalize_text(train[0].text).text == "hello she said"
    assert train[1].text == "It's two past ten"  # as written, spaces collapsed
    assert normalize_text(train[2].text).text == "cafe au lait"
    assert [u.duration for u in train] == pytest.approx([1.5, 2.0, 0.75], abs=5e-3)
    assert [(u.id, u.text) for u in dev] == [("a1b2c3d4e5f6-common_voice_en_3", "Short one.")]
    err = capsys.readouterr().err
    assert "train: skipped 3 problem(s)" in err
    for what in ["train.tsv:6: empty sentence for common_voice_en_3.mp3", "train.tsv:5: audio ",
                 "common_voice_en_9.mp3 not found", "train.tsv:7: unreadable line (2 fields, the header has 13)"]:
        assert what in err, what


def test_prepare_commonvoice_clear_errors(tmp_path, capsys):
    root = tmp_path / "en"
    _common_voice(root)
    with pytest.raises(UserError, match=r"validated.tsv: no such split \(found: dev, train\)"):
        prepare_commonvoice(root, ["validated"], tmp_path / "m", progress=False)
    (root / "test.tsv").write_text("client_id\tfilename\ttext\n")
    with pytest.raises(UserError, match=r"test.tsv:1: no path, sentence column in the header"):
        prepare_commonvoice(root, ["test"], tmp_path / "m", progress=False)
    with pytest.raises(UserError, match="no clips/ folder"):
        prepare_commonvoice(tmp_path, ["train"], tmp_path / "m", progress=False)
    assert main(["prepare", "commonvoice", "--root", str(root), "--subsets", "dev", "--out", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.strip() == f"dev\t{tmp_path / 'c' / 'dev.jsonl'}"
