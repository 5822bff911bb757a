"""Transcription for users: word alignment, subtitles, long audio in windows, batches, the plot."""

import json
import math
import re

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

import asr.align
import asr.longform
import asr.transcribe
from asr.align import align_text, align_words
from asr.audio import load_audio
from asr.cli import main
from asr.decode import GreedyDecoder
from asr.longform import FileSource, LongFormConfig, windowed_log_probs
from asr.model import conv_out_lengths
from asr.text import CharTokenizer
from asr.transcribe import Recognizer, cues, timestamp, to_srt, to_vtt
from conftest import fsdd_manifest

TOK = CharTokenizer()
FRAME_S = 0.04


pytestmark = pytest.mark.usefixtures("one_thread")


def peaky(emit: dict[int, tuple[str, float]], n_frames: int) -> torch.Tensor:
    """(T, V) log-probs: frame t emits emit[t] = (char, probability), every other frame blank with 0.95."""
    p = torch.full((n_frames, len(TOK)), 0.05 / (len(TOK) - 1))
    p[:, 0] = 0.95
    for t, (ch, prob) in emit.items():
        p[t] = (1 - prob) / (len(TOK) - 1)
        p[t, TOK.encode(ch)[0]] = prob
    return p.log()


def decode_and_align(lp: torch.Tensor, **kw) -> list[dict]:
    hyp = GreedyDecoder(TOK).decode(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]
    return align_words(lp, hyp, TOK, FRAME_S, **kw)


def test_word_times_and_confidence():
    emit = {5: ("h", 0.9), 6: ("i", 0.9), 7: ("i", 0.9), 12: (" ", 0.9), 20: ("y", 0.9), 21: ("o", 0.6)}
    words = decode_and_align(peaky(emit, 40))
    assert [w["word"] for w in words] == ["hi", "yo"]
    assert words[0]["start"] == pytest.approx(5 * FRAME_S) and words[0]["end"] == pytest.approx(8 * FRAME_S)
    assert words[1]["start"] == pytest.approx(20 * FRAME_S) and words[1]["end"] == pytest.approx(22 * FRAME_S)
    assert words[0]["confidence"] == pytest.approx(0.9, abs=1e-3)
    assert words[1]["confidence"] == pytest.approx(0.75, abs=1e-3)  # mean of 0.9 and 0.6


def test_long_hypothesis_aligned_in_pieces_as_in_one():
    rng = np.random.default_rng(0)
    vocab = ["hello", "world", "see", "a", "llama", "odd"]  # doubled letters need a blank between them
    emit, t = {}, 3
    for _ in range(60):
        for ch in rng.choice(vocab):
            emit[t] = (ch, float(rng.uniform(0.5, 0.99)))
            t += 2  # a blank between letters
        emit[t + int(rng.integers(1, 5))] = (" ", 0.9)
        t += 8
    lp = peaky(emit, t + 5)
    whole = decode_and_align(lp, max_frames=10**6)
    assert decode_and_align(lp, max_frames=100) == whole
    assert len(whole) == 60 and all(a["end"] <= b["start"] for a, b in zip(whole, whole[1:]))
    no_spaces = peaky({t: (ch, 0.8) for t, ch in zip(range(2, 400, 2), "abc" * 100)}, 410)  # one 16-second "word"
    assert decode_and_align(no_spaces, max_frames=50) == decode_and_align(no_spaces, max_frames=10**6)


def test_word_times_with_bpe_pieces(tmp_path):
    """BPE pieces mark word starts with ▁ instead of a space token; times and words come out the same way."""
    pytest.importorskip("sentencepiece")
    from asr.text import train_bpe

    bpe = train_bpe(["hello world", "say hello to the world", "the word is hello"] * 20, 40, tmp_path / "bpe.model")
    ids = bpe.encode("hello world hello")
    emit = {5 + 3 * i: (tok, 0.9) for i, tok in enumerate(ids)}
    p = torch.full((5 + 3 * len(ids) + 4, len(bpe)), 0.05 / (len(bpe) - 1))
    p[:, 0] = 0.95
    for t, (tok, prob) in emit.items():
        p[t] = (1 - prob) / (len(bpe) - 1)
        p[t, tok] = prob
    lp = p.log()
    hyp = GreedyDecoder(bpe).decode(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]
    words = align_words(lp, hyp, bpe, FRAME_S)
    assert hyp.text == "hello world hello" and [w["word"] for w in words] == hyp.text.split()
    assert words[0]["start"] == pytest.approx(5 * FRAME_S)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
    assert all(w["confidence"] == pytest.approx(0.9, abs=1e-3) for w in words)
    assert align_words(lp, hyp, bpe, FRAME_S, max_frames=4) == words  # one piece per word


def test_subtitle_formats():
    assert timestamp(3723.4567) == "01:02:03,457" and timestamp(0.0, ".") == "00:00:00.000"
    words = [{"word": f"w{i}", "start": 0.3 * i, "end": 0.3 * i + 0.2, "confidence": 0.9} for i in range(20)]
    words += [{"word": "late", "start": 30.0, "end": 30.5, "confidence": 0.5}]  # after a pause: its own cue
    cs = cues(words)
    assert all(len(text.split()) <= 7 and b - a <= 5.0 for a, b, text in cs)
    assert " ".join(text for _, _, text in cs).split() == [w["word"] for w in words]
    assert cs[-1] == (30.0, 30.5, "late")
    srt = to_srt(words).strip().split("\n\n")
    assert len(srt) == len(cs) and srt[0].splitlines()[:2] == ["1", "00:00:00,000 --> 00:00:02,000"]
    vtt = to_vtt(words)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nw0 w1")
    assert to_srt([]) == "" and to_vtt([]) == "WEBVTT\n\n"


# ------------------------------------------------------------------------------------------- long audio


def write_signal(path, seconds: float, rate: int, channels: int = 1, seed: int = 0):
    """Noise under a wandering envelope: every stretch of it is different."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    env = np.interp(np.arange(n), np.linspace(0, n, int(seconds * 4) + 2), rng.uniform(0.01, 0.5, int(seconds * 4) + 2))
    x = (rng.standard_normal((n, channels)) * env[:, None]).astype(np.float32)
    sf.write(path, x if channels > 1 else x[:, 0], rate)
    return path


@pytest.mark.parametrize("rate, channels", [(44100, 2), (8000, 1), (16000, 1)])
def test_file_blocks_resample_as_the_whole_file(tmp_path, rate, channels):
    path = write_signal(tmp_path / "a.flac", 7.3, rate, channels)
    whole = load_audio(path, 16000)
    with FileSource(path, 16000) as src:
        assert src.num_samples == whole.numel()
        for a, b in [(0, 1000), (640 * 37, 640 * 101), (12345, 67890), (whole.numel() - 5000, whole.numel())]:
            assert torch.allclose(src.read(a, b), whole[a:b], atol=1e-5), (a, b)


class LinearLocal(torch.nn.Module):
    """A stand-in acoustic model: output frame j is a fixed random projection of feature frames sj..sj+s-1 (s: the
    subsampling)."""

    def __init__(self, n_mels: int = 80, vocab: int = len(TOK), subsampling: int = 4):
        super().__init__()
        self.s = subsampling
        self.proj = torch.nn.Linear(subsampling * n_mels, vocab)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, feats, lengths):
        b, t, f = feats.shape
        tp = int(conv_out_lengths(torch.tensor(t), self.s))
        x = F.pad(feats, (0, 0, 0, self.s * tp - t)).reshape(b, tp, self.s * f)  # (B, T, F) -> (B, T', sF)
        return self.proj(x).log_softmax(-1), conv_out_lengths(lengths, self.s)


class LocalTokens(torch.nn.Module):
    """A stand-in that speaks: loud frames emit a letter by loudness, the first quiet frame after them a space."""

    THRESHOLD = -9.0  # mean log-mel between digital silence (ln 1e-6 = -13.8) and speech

    def forward(self, feats, lengths):
        b, t, f = feats.shape
        tp = int(conv_out_lengths(torch.tensor(t)))
        x = F.pad(feats, (0, 0, 0, 4 * tp - t), value=-13.8).reshape(b, tp, 4, f).mean((2, 3))  # (B, T')
        speech = x > self.THRESHOLD
        after = F.pad(speech, (1, 0))[:, :-1]  # the previous frame was loud
        letter = 3 + ((x - self.THRESHOLD) / 0.5).long().clamp(0, 25)  # a, b, c ... louder is later
        tokens = torch.where(speech, letter, torch.where(after, 1, 0))
        return (10.0 * F.one_hot(tokens, len(TOK)).float()).log_softmax(-1), conv_out_lengths(lengths)


@pytest.fixture(scope="module")
def rec(tiny_model):
    return Recognizer(tiny_model, longform=LongFormConfig(window_s=3.0, context_s=1.0, threshold_s=2.0))


@pytest.mark.parametrize("rate,subsampling", [(44100, 4), (16000, 4), (16000, 3)])
def test_windows_stitch_to_the_single_pass(rec, tmp_path, rate, subsampling):
    """With a model of short reach, the kept central parts equal one pass over the whole file, frame for frame."""
    path = write_signal(tmp_path / "long.wav", 20.5, rate, channels=2)
    model = LinearLocal(subsampling=subsampling)
    single = model(rec.logmel(load_audio(path)).unsqueeze(0), torch.tensor([0]))[0][0]
    with FileSource(path, 16000) as src:
        stitched = windowed_log_probs(model, rec.logmel, src, rec.longform, subsampling=subsampling)
    assert stitched.shape == single.shape  # every frame once: none lost, none doubled
    assert torch.allclose(stitched, single, atol=1e-4), float((stitched - single).abs().max())


def digit_copies(fsdd, tmp_path, n: int):
    """An FSDD digit padded with silence to a whole number of 40 ms frames, alone and repeated n times (8 kHz)."""
    x, rate = sf.read(sorted(fsdd.glob("*.wav"))[1], dtype="float32")
    quiet = np.zeros(rate // 4, np.float32)
    x = np.concatenate([quiet, x, quiet])
    x = np.concatenate([x, np.zeros(-len(x) % (rate // 25), np.float32)])  # 40 ms = rate // 25 samples
    sf.write(tmp_path / "short.wav", x, rate)
    sf.write(tmp_path / "long.wav", np.tile(x, n), rate)
    return tmp_path / "short.wav", tmp_path / "long.wav", len(x) / rate


@pytest.mark.parametrize("stand_in", [None, LocalTokens()], ids=["tiny_model", "local_tokens"])
def test_repeated_file_gives_repeated_words(rec, fsdd, tmp_path, monkeypatch, stand_in):
    """N copies of a digit, read window by window (3 s windows, boundaries inside words): the words of one copy, N
    times, each inside its copy. The tiny model (2 epochs) still outputs only blanks, so the stand-in that
    emits letters by loudness is what checks words at boundaries; the tiny model checks the real LSTM path."""
    n = 7
    short, long, copy_s = digit_copies(fsdd, tmp_path, n)
    if stand_in is not None:
        monkeypatch.setattr(rec, "model", stand_in)
    one = rec.transcribe(short)
    assert one.duration < rec.longform.threshold_s < n * copy_s  # the long file goes through windows
    monkeypatch.setattr(asr.transcribe, "load_audio", None)  # ... and is never read whole
    many = rec.transcribe(long, keep_log_probs=True)
    assert many.text.split() == one.text.split() * n
    for i, w in enumerate(many.words):
        copy = i // max(1, len(one.words))
        assert copy * copy_s <= w["start"] < w["end"] <= (copy + 1) * copy_s
        assert w["start"] - copy * copy_s == pytest.approx(one.words[i % len(one.words)]["start"], abs=1e-6)
    if stand_in is not None:
        assert len(one.words) >= 1
    else:  # the real BiLSTM: windows with 1 s of context agree with one pass over the file
        single = rec.log_probs(load_audio(long))
        assert many.log_probs.shape == single.shape
        assert (many.log_probs - single).abs().max() < 2e-3
        assert torch.equal(many.log_probs.argmax(-1), single.argmax(-1))


def test_long_file_read_in_window_sized_blocks(rec, tmp_path, monkeypatch):
    path = write_signal(tmp_path / "long.flac", 25.0, 44100)
    monkeypatch.setattr(rec, "model", LinearLocal())
    reads = []

    class Spy(sf.SoundFile):
        def read(self, frames=-1, *args, **kw):
            reads.append(frames)
            return super().read(frames, *args, **kw)

    monkeypatch.setattr(asr.longform.sf, "SoundFile", Spy)
    rec.transcribe(path, words=False)
    window = (rec.longform.window_s + 2 * asr.longform.RESAMPLE_MARGIN_S + 0.01) * 44100
    assert len(reads) >= 25 / 3 and 0 < max(reads) <= window


def test_an_hour_of_audio_in_windows(tiny_model, tmp_path, monkeypatch):
    """One hour (8 kHz WAV, written block by block): every 40 ms frame decoded once, in 60 s windows."""
    path, rate, block = tmp_path / "hour.wav", 8000, 8000 * 60
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as f:
        for _ in range(60):  # a minute at a time
            f.write(0.1 * rng.standard_normal(block).astype(np.float32))
    rec = Recognizer(tiny_model)  # the default long-form settings
    before = asr.longform.windowed_log_probs
    windows = []

    def counting(*args, **kw):
        out = before(*args, **kw)
        windows.append(out.shape)
        return out

    monkeypatch.setattr(asr.transcribe, "windowed_log_probs", counting)
    monkeypatch.setattr(asr.transcribe, "load_audio", None)  # never read whole
    t = rec.transcribe(path, keep_log_probs=True, words=False)
    assert windows, "an hour must go through windows"
    assert t.duration == pytest.approx(3600.0)
    n_feature_frames = 1 + 3600 * 16000 // 160  # centered 10 ms frames of the resampled hour: 360001
    assert t.log_probs.shape[0] == -(-n_feature_frames // 4) == 90001  # 40 ms frames, none lost or doubled
    assert torch.isfinite(t.log_probs).all()


@pytest.mark.parametrize("seconds, level", [(0.05, 0.1), (0.01, 0.1), (3.0, 0.0)], ids=["50ms", "10ms", "silence"])
def test_very_short_and_silent_files_transcribe(tiny_model, tmp_path, capsys, seconds, level):
    """50 ms (5 feature frames, 2 output frames), 10 ms (one frame) and 3 s of digital silence work."""
    path = tmp_path / "short.wav"
    sf.write(path, level * np.random.default_rng(0).standard_normal(int(16000 * seconds)), 16000)
    assert main(["transcribe", "--model", str(tiny_model), str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{path}\t")
    if seconds < 0.035:  # shorter than a window and a hop: no speech, whatever the model reads at the edges
        assert out[0] == f"{path}\t"


def test_audio_shorter_than_a_window_and_a_hop_reads_as_empty(tiny_model, monkeypatch):
    """Below 35 ms the text is empty without asking the decoder; from there on the decoder reads it."""
    import asr.transcribe as tr
    from asr.decode import Hypothesis

    rec = tr.Recognizer(tiny_model)
    asked = []
    monkeypatch.setattr(rec.decoder, "decode", lambda lp, n: asked.append(int(n[0])) or [Hypothesis("x", [1], [0])])
    assert rec.min_speech_s == pytest.approx(0.035)
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    assert rec.transcribe(noise[:559], 16000).text == "" and asked == []
    assert rec.transcribe(noise[:560], 16000).text == "x" and len(asked) == 1


# ---------------------------------------------------------------------------------------------- the CLI


def test_cli_json_srt_vtt(tiny_model, fsdd, tmp_path, capsys):
    wav = sorted(fsdd.glob("*.wav"))[0]
    assert main(["transcribe", "--model", str(tiny_model), "--format", "json", str(wav)]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["file"] == str(wav) and obj["duration"] > 0 and isinstance(obj["words"], list)
    assert main(["transcribe", "--model", str(tiny_model), "--format", "vtt", str(wav)]) == 0
    assert capsys.readouterr().out.startswith("WEBVTT")  # one file: to stdout
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    for name in ["a.wav", "sub/b.wav"]:
        (d / name).write_bytes(wav.read_bytes())
    assert main(["transcribe", "--model", str(tiny_model), "--format", "srt", str(d)]) == 0
    assert (d / "a.srt").is_file() and (d / "sub" / "b.srt").is_file()  # beside each input
    out = tmp_path / "subs"
    assert main(["transcribe", "--model", str(tiny_model), "--format", "vtt", "--out-dir", str(out), str(d)]) == 0
    assert (out / "a.vtt").read_text().startswith("WEBVTT") and (out / "sub" / "b.vtt").is_file()


def test_cli_batch_reports_bad_files(tiny_model, fsdd, tmp_path, capsys):
    d = tmp_path / "batch"
    (d / "deep").mkdir(parents=True)
    wavs = sorted(fsdd.glob("*.wav"))[:3]
    for i, w in enumerate(wavs):
        (d / "deep" / f"{i}.wav").write_bytes(w.read_bytes())
    (d / "bad.flac").write_bytes(b"not audio at all")
    (d / "notes.txt").write_text("ignored: not an audio extension")
    listed = tmp_path / "list.txt"
    listed.write_text(f"# extra files\n{wavs[0]}\n\n/no/such.wav\n")
    rc = main(["transcribe", "--model", str(tiny_model), "--jobs", "2", str(d), "--list", str(listed)])
    cap = capsys.readouterr()
    assert rc == 2
    files = [line.split("\t")[0] for line in cap.out.splitlines()]
    assert files == [str(d / "deep" / f"{i}.wav") for i in range(3)] + [str(wavs[0])]
    summary = cap.err[cap.err.index("error: 2 of 6 files failed:"):].splitlines()
    assert len(summary) == 3 and "bad.flac" in summary[1] and "/no/such.wav" in summary[2]


def test_cli_plot(tiny_model, librispeech_sample, tmp_path, capsys):
    flac = sorted(librispeech_sample.rglob("*.flac"))[0]
    png = tmp_path / "plot.png"
    assert main(["transcribe", "--model", str(tiny_model), "--plot", str(png), str(flac)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert re.match(rf"{re.escape(str(flac))}\t", capsys.readouterr().out)


# ---------------------------------------------------------------------------------------------- asr align


def test_align_text_of_the_greedy_output_has_no_gap_and_the_decoders_times():
    emit = {5: ("h", 0.9), 6: ("i", 0.9), 7: ("i", 0.9), 12: (" ", 0.9), 20: ("y", 0.9), 21: ("o", 0.6)}
    lp = peaky(emit, 40)
    a = align_text(lp, TOK.encode("hi yo"), TOK, FRAME_S)
    assert a.words == decode_and_align(lp)  # the transcript is what the model heard: the same words and times
    assert a.gap == pytest.approx(0.0, abs=1e-6)
    assert a.logprob == pytest.approx(float(lp.max(-1).values.mean()), abs=1e-5)


def test_align_text_of_a_wrong_transcript_has_a_gap_and_still_times_its_words():
    emit = {5: ("h", 0.9), 6: ("i", 0.9), 12: (" ", 0.9), 20: ("y", 0.9), 21: ("o", 0.9)}
    lp = peaky(emit, 40)
    a = align_text(lp, TOK.encode("ha yo"), TOK, FRAME_S)  # "a" where the model heard "i"
    assert [w["word"] for w in a.words] == ["ha", "yo"]
    assert a.words[1]["start"] == pytest.approx(20 * FRAME_S)
    # the forced path takes "a" (p = 0.1 / 28) instead of "i" (0.9) in one frame: the gap is that frame's loss / T
    assert a.gap == pytest.approx(math.log(0.9 / (0.1 / (len(TOK) - 1))) / 40, rel=1e-3)


def test_align_text_refuses_a_transcript_the_frames_cannot_hold(monkeypatch):
    lp = peaky({1: ("a", 0.9)}, 6)
    with pytest.raises(ValueError, match=r"at least 7 output frames .* the audio gives 6"):
        align_text(lp, TOK.encode("aa bb"), TOK, FRAME_S)  # 5 tokens + 2 blanks between repeats
    assert align_text(peaky({}, 7), TOK.encode("aa bb"), TOK, FRAME_S).words  # 7 frames hold it
    monkeypatch.setattr(asr.align, "MAX_CELLS", 7 * 15 - 1)  # the table of 7 frames x (2 x 7 + 1) states
    with pytest.raises(ValueError, match="too long to align in one piece"):
        align_text(peaky({}, 7), TOK.encode("aa bb"), TOK, FRAME_S)


def test_cli_align_manifest_and_one_file(tiny_model, fsdd, tmp_path, capsys):
    files = sorted(fsdd.glob("*_george_*.wav"))[:3]
    manifest = fsdd_manifest(tmp_path / "m.jsonl", files)
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    rows[1]["text"] = "ZERO " * 40  # too many words for a short digit: reported, the others still written
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "a.ctm"
    assert main(["align", "--model", str(tiny_model), "--manifest", str(manifest), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "aligned 2 of 3 utterances" in err and f"{rows[1]['id']}: the transcript needs at least" in err
    lines = [x.split() for x in out.read_text().splitlines()]
    assert [(x[0], x[4]) for x in lines] == [(r["id"], r["text"].lower()) for r in (rows[0], rows[2])]
    assert all(x[1] == "1" and float(x[2]) >= 0 and float(x[3]) > 0 and 0 <= float(x[5]) <= 1 for x in lines)
    assert main(["align", "--model", str(tiny_model), str(files[0]), "--text", rows[0]["text"],
                 "--format", "jsonl"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["id"] == files[0].stem and row["gap_per_frame"] >= 0 and len(row["words"]) == 1
    assert main(["align", "--model", str(tiny_model), str(files[0])]) == 2
    assert "--text TRANSCRIPT is needed" in capsys.readouterr().err
