"""Property tests (hypothesis): normalization, manifest parsing and audio loading never crash
on arbitrary input; they return a valid result or raise UserError."""

import io
import json

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr.audio import load_audio
from asr.errors import UserError
from asr.manifest import read_manifest
from asr.text import CHARS, CharTokenizer, normalize_text

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.text())
def test_normalize_any_text(text):
    n = normalize_text(text)
    assert set(n.text) <= set(CHARS)
    assert n.text == n.text.strip() and "  " not in n.text
    assert normalize_text(n.text).text == n.text  # idempotent
    CharTokenizer().encode(n.text)  # always encodable


@FAST
@given(st.lists(st.one_of(
    st.text(max_size=80),
    st.builds(lambda d: json.dumps(d), st.dictionaries(st.sampled_from(["id", "audio", "duration", "text", "x"]),
                                                       st.one_of(st.text(max_size=10), st.floats(), st.integers(),
                                                                 st.none(), st.booleans()))),
), max_size=8))
def test_manifest_parsing_never_crashes(tmp_path, lines):
    path = tmp_path / "fuzz.jsonl"
    text = "\n".join(line.replace("\n", " ") for line in lines) + "\n"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))  # lone surrogates too: bytes no decoder expects
    try:
        utts = read_manifest(path, check_audio=False, quiet=True)
    except UserError:
        return
    assert all(u.duration > 0 and normalize_text(u.text).text for u in utts)
    assert len({u.id for u in utts}) == len(utts)


@FAST
@given(st.binary(max_size=2000))
def test_random_bytes_as_audio(tmp_path, data):
    path = tmp_path / "fuzz.wav"
    path.write_bytes(data)
    try:
        wav = load_audio(path)
    except UserError as e:
        assert str(path) in str(e)
        return
    assert wav.ndim == 1 and wav.numel() > 0 and np.isfinite(wav.numpy()).all()


@FAST
@given(st.binary(min_size=1, max_size=400), st.integers(0, 3000))
def test_corrupted_real_wav(tmp_path, junk, cut):
    """A valid WAV header followed by truncation or garbage: a clean result or a clean error."""
    buf = io.BytesIO()
    sf.write(buf, np.sin(np.arange(4000) / 10).astype(np.float32) * 0.5, 8000, format="WAV", subtype="PCM_16")
    raw = buf.getvalue()
    path = tmp_path / "cut.wav"
    path.write_bytes(raw[: 44 + cut] + junk)
    try:
        wav = load_audio(path)
    except UserError:
        return
    assert wav.ndim == 1 and np.isfinite(wav.numpy()).all()
