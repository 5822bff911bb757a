"""Tests of the embedded espeak-ng corpus (asr.corpus.synth) and its grammar (asr.corpus.sentences).

Grammar tests run anywhere; the synthesis tests skip when espeak-ng is not installed.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import inspect
import itertools
import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.corpus import espeak_lib
from asr.corpus import sentences as S
from asr.corpus import synth
from asr.corpus.synth import SynthConfig
from asr.errors import UserError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")

# A tiny corpus: ~40 s of train audio; the fairness floor is switched off for it.
TINY = SynthConfig(hours=0.01, dev_utts=5, test_utts=8, min_test_utts=0, min_test_words=0, jobs=1)
TRANS_LINE = re.compile(r"^(\d+)-(\d+)-(\d{4}) ([A-Z']+(?: [A-Z']+)*)$")


# ---------------------------------------------------------------------------
# The grammar (no espeak needed)
# ---------------------------------------------------------------------------


def test_lexicon_is_controlled():
    lex = S.lexicon()
    assert 1200 <= len(lex) <= 2000
    assert all(re.fullmatch(r"[A-Z']+", w) for w in lex)


def test_sentences_stay_in_lexicon_and_length():
    texts = list(itertools.islice(S.sentence_stream(7), 3000))
    words = [S.normalize(t).split() for t in texts]
    assert all(S.MIN_WORDS <= len(w) <= S.MAX_WORDS for w in words)
    used = {w for ws in words for w in ws}
    assert used <= S.lexicon()
    assert len(used) > 1000  # varied: 3000 sentences already touch most of the vocabulary
    assert len({S.normalize(t) for t in texts}) > 2990  # sentences rarely repeat


def test_verb_table_names_known_classes():
    classes = set(S.THINGS) | {"person", "animal", "food", "drink", "game", "place", "mass_food", "bread", "dish"}
    for verb in S.TRANSITIVE:
        for cls in verb.objects:
            assert cls[1:] in S.CLASS_OF if cls.startswith("=") else cls in classes, (verb, cls)


def test_stream_is_deterministic():
    a = list(itertools.islice(S.sentence_stream(3), 50))
    assert a == list(itertools.islice(S.sentence_stream(3), 50))
    assert a != list(itertools.islice(S.sentence_stream(4), 50))


def test_normalize_is_librispeech_style():
    assert S.normalize("after dinner, we didn't walk to the post_office?") == \
        "AFTER DINNER WE DIDN'T WALK TO THE POST OFFICE"


def test_default_test_split_is_fair_without_synthesizing():
    cfg = SynthConfig()
    test = synth.corpus_text(cfg, "test")
    assert len(test) >= 200 and synth.distinct_words(test) >= 600
    synth.check_test_split(test, cfg)  # does not raise
    small = dataclasses.replace(cfg, test_utts=50)
    with pytest.raises(UserError, match="test split too small"):
        synth.check_test_split(synth.corpus_text(small, "test"), small)


def test_text_splits_are_disjoint():
    cfg = SynthConfig()
    test, dev = set(synth.corpus_text(cfg, "test")), set(synth.corpus_text(cfg, "dev"))
    train = set(synth.corpus_text(cfg, "train", n=3000))
    assert len(test) == cfg.test_utts and len(dev) == cfg.dev_utts and len(train) == 3000
    assert not (test & dev) and not (test & train) and not (dev & train)


def test_small_test_config_is_refused_before_any_work(tmp_path):
    with pytest.raises(UserError, match="test split too small"):
        synth.synth_corpus(tmp_path, SynthConfig(test_utts=20), progress=False)
    assert not (tmp_path / "LibriSpeech").exists()


def test_every_config_field_has_a_unit_comment():
    source = inspect.getsource(SynthConfig)
    for field in dataclasses.fields(SynthConfig):
        line = next(ln for ln in source.splitlines() if ln.strip().startswith(f"{field.name}:"))
        comment = line.partition("#")[2].strip() or _comment_above(source, field.name)
        assert comment, f"{field.name} has no comment"


def _comment_above(source: str, name: str) -> str:
    lines = source.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.strip().startswith(f"{name}:"))
    return lines[i - 1].strip().lstrip("#").strip() if lines[i - 1].strip().startswith("#") else ""


def test_missing_espeak_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="espeak-ng not found: install it with 'apt-get install espeak-ng'"):
        synth.synth_corpus(tmp_path, TINY, progress=False)


# ---------------------------------------------------------------------------
# Voices (espeak needed)
# ---------------------------------------------------------------------------


def _samples_hash(voice: str) -> str:
    samples, _ = synth.read_wav(synth.espeak_wav(voice, "one two three four five"))
    return hashlib.sha1(samples.tobytes()).hexdigest()


@needs_espeak
def test_unknown_variant_falls_back_silently():
    """The trap discovery guards against: a wrong variant name still 'works'."""
    assert _samples_hash("en-us+no-such-variant") == _samples_hash("en-us")


needs_espeak_lib = pytest.mark.skipif(not espeak_lib.available(),
                                      reason="libespeak-ng cannot be loaded in-process here (Linux with espeak-ng)")
LIB_CASES = [("en-us+adam", "a dancer will love several warm robots after school", 170, 50),
             ("en-gb-scotland+aunty", "adam and sarah didn't light her candle on thursday.", 130, 25),
             ("en-gb", "the quick brown fox, jumped over the lazy dog!", 210, 75),  # a language, not a voice file
             ("en-us+f3", "she sells sea shells by the sea shore", 150, 60)]  # f3's voicing draws on rand()


@needs_espeak_lib
def test_library_speaks_exactly_what_the_program_writes_whatever_came_before():
    """The in-process library must give the program's samples bit for bit, also for a sentence spoken after
    others (the library keeps state between sentences; each call loads a fresh copy)."""
    program = [synth.read_wav(synth.espeak_wav(*case)) for case in LIB_CASES]
    libc = ctypes.CDLL(None)
    for i in (0, 1, 2, 3, 0, 3, 2, 1, 3):  # repeats and other orders: the state left by a call must not leak
        for _ in range(i):
            libc.rand()  # as other code in the process may: the library's own draws must not depend on it
        got, rate = synth.espeak_samples(*LIB_CASES[i])
        assert rate == program[i][1] == synth.ESPEAK_RATE
        assert got.dtype == program[i][0].dtype and np.array_equal(got, program[i][0]), LIB_CASES[i]


@needs_espeak
def test_unknown_voice_is_a_user_error_with_and_without_the_library(monkeypatch):
    for lib in ((True, False) if espeak_lib.available() else (False,)):
        monkeypatch.setattr(espeak_lib, "available", lambda lib=lib: lib)
        with pytest.raises(UserError, match="espeak-ng failed for voice 'xx-nosuch'"):
            synth.espeak_samples("xx-nosuch", "hello")


@needs_espeak
def test_discovered_variants_all_sound_different():
    voices = synth.discover_voices()
    assert len(voices.accents) >= 2 and "en-us" in voices.accents
    assert len(voices.variants) >= 30
    probes = ["en-us", *(f"en-us+{v}" for v in voices.variants)]
    with ThreadPoolExecutor(8) as pool:  # a sentence other than discovery's own probe
        hashes = list(pool.map(_samples_hash, probes))
    assert len(set(hashes)) == len(hashes)


@needs_espeak
def test_variant_split_is_disjoint_and_seeded():
    voices = synth.discover_voices()
    cfg = SynthConfig()
    groups = synth.split_variants(voices.variants, cfg)
    assert len(groups["test"]) == cfg.test_variants and len(groups["dev"]) == cfg.dev_variants
    assert not set(groups["test"]) & set(groups["dev"])
    assert not (set(groups["test"]) | set(groups["dev"])) & set(groups["train"])
    assert not set(cfg.exclude_variants) & {v for g in groups.values() for v in g}
    assert groups == synth.split_variants(voices.variants, cfg)
    assert groups != synth.split_variants(voices.variants, dataclasses.replace(cfg, seed=1))


# ---------------------------------------------------------------------------
# A tiny synthesized corpus (espeak needed)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    summary = synth.synth_corpus(out, TINY, progress=False)
    assert summary["hours"]["train"] >= TINY.hours
    return out / "LibriSpeech"


def _transcripts(root: Path) -> dict[str, dict[str, str]]:
    """subset -> {utt id: transcript}, checking the line format on the way."""
    out: dict[str, dict[str, str]] = {}
    for subset in synth.SUBSET.values():
        lines = {}
        for trans in sorted((root / subset).glob("*/*/*.trans.txt")):
            spk, ch = trans.parent.parent.name, trans.parent.name
            assert trans.name == f"{spk}-{ch}.trans.txt"
            for line in trans.read_text(encoding="utf-8").splitlines():
                m = TRANS_LINE.match(line)
                assert m, line
                assert (m[1], m[2]) == (spk, ch)
                lines[line.split(" ", 1)[0]] = line.split(" ", 1)[1]
        out[subset] = lines
    return out


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@needs_espeak
def test_layout_and_transcripts(tiny):
    trans = _transcripts(tiny)
    for subset, lines in trans.items():
        flacs = {p.stem: p for p in (tiny / subset).glob("*/*/*.flac")}
        assert set(flacs) == set(lines) and lines
        for utt_id, path in flacs.items():
            spk, ch, _ = utt_id.split("-")
            assert path.parent == tiny / subset / spk / ch
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
            assert 0.5 < info.duration < 15
    assert {len(v) for k, v in trans.items() if k != "train-synth"} == {TINY.test_utts, TINY.dev_utts}
    marker = json.loads((tiny / synth.COMPLETE_MARKER).read_text())
    assert marker["config"] == TINY.identity()
    assert not (tiny / synth.STARTED_MARKER).exists()
    assert not list(tiny.rglob("*.tmp"))


@needs_espeak
def test_voices_and_sentences_are_disjoint_across_splits(tiny):
    rows = [ln.split("\t") for ln in (tiny / synth.SPEAKERS_FILE).read_text().splitlines()[1:]]
    variants = {subset: {r[2] for r in rows if r[3] == subset} for subset in synth.SUBSET.values()}
    a, b, c = variants.values()
    assert not (a & b) and not (a & c) and not (b & c)
    speakers = [r[0] for r in rows]
    assert len(speakers) == len(set(speakers))  # a speaker id is one voice in one split
    trans = _transcripts(tiny)
    spk_split = {r[0]: r[3] for r in rows}
    for subset, lines in trans.items():
        assert all(spk_split[u.split("-")[0]] == subset for u in lines)
    texts = [set(lines.values()) for lines in trans.values()]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert {r[1] for r in rows if r[3] == "test-synth"} == set(synth.discover_voices().accents)


@needs_espeak
def test_same_seed_gives_same_corpus_whatever_jobs(tiny, tmp_path):
    synth.synth_corpus(tmp_path, dataclasses.replace(TINY, jobs=2), progress=False)
    other = tmp_path / "LibriSpeech"
    assert _files(other) == _files(tiny)
    assert _transcripts(other) == _transcripts(tiny)
    for rel in _files(tiny):
        if rel.endswith(".flac"):
            assert (other / rel).read_bytes() == (tiny / rel).read_bytes(), rel


@needs_espeak
def test_rerun_is_a_no_op(tiny):
    before = {p: p.stat().st_mtime_ns for p in tiny.rglob("*")}
    summary = synth.synth_corpus(tiny.parent, TINY, progress=False)
    assert summary["cached"] is True
    assert {p: p.stat().st_mtime_ns for p in tiny.rglob("*")} == before


@needs_espeak
def test_other_config_over_existing_corpus_is_refused(tiny):
    with pytest.raises(UserError, match="another config.*seed.*choose another --out or delete it"):
        synth.synth_corpus(tiny.parent, dataclasses.replace(TINY, seed=5), progress=False)


@needs_espeak
def test_interrupted_run_resumes(tmp_path, tiny):
    root = tmp_path / "LibriSpeech"
    shutil.copytree(tiny, root, symlinks=True)
    # Simulate a crash: completion marker and some files never written.
    (root / synth.COMPLETE_MARKER).unlink()
    (root / synth.STARTED_MARKER).write_text(json.dumps({"config": TINY.identity()}))
    removed = [p for p in sorted(root.rglob("*.flac"))[::3]] + sorted(root.rglob("*.trans.txt"))[:2]
    for p in removed:
        p.unlink()
    stray = root / "train-synth" / "9999" / "1" / "9999-1-0000.flac"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not planned")
    synth.synth_corpus(tmp_path, TINY, progress=False)
    assert not stray.exists()
    stray.parent.rmdir()
    assert _files(root) == _files(tiny)
    for p in removed:
        assert p.read_bytes() == (tiny / p.relative_to(root)).read_bytes()
    with pytest.raises(UserError, match="another config"):
        (root / synth.COMPLETE_MARKER).unlink()
        (root / synth.STARTED_MARKER).write_text(json.dumps({"config": TINY.identity()}))
        synth.synth_corpus(tmp_path, dataclasses.replace(TINY, hours=0.02), progress=False)


@needs_espeak
def test_librispeech_reader_accepts_it(tiny):
    librispeech = pytest.importorskip("asr.corpus.librispeech")
    utts, problems = librispeech.read_subset(tiny / "test-synth", strict=True, progress=False)
    assert not problems and len(utts) == TINY.test_utts


@needs_espeak
def test_made_up_voices_speak_in_training_only_and_leave_dev_and_test_as_they_were(tiny, tmp_path):
    assert TINY.made_up_voices == 0
    cfg = dataclasses.replace(TINY, made_up_voices=30)  # many: the tiny corpus's dozen train utterances meet some
    synth.synth_corpus(tmp_path, cfg, progress=False)
    other = tmp_path / "LibriSpeech"
    rows = [ln.split("\t") for ln in (other / synth.SPEAKERS_FILE).read_text().splitlines()[1:]]
    made = {r[2] for r in rows if r[2].startswith("madeup")}
    assert made and all(r[3] == "train-synth" for r in rows if r[2] in made)
    marker = json.loads((other / synth.COMPLETE_MARKER).read_text())
    assert marker["config"] == cfg.identity() and marker["voices"]["made_up"] == [f"madeup{i:03d}" for i in
                                                                                  range(1, 31)]
    assert "madeup" not in (tiny / synth.SPEAKERS_FILE).read_text()
    for subset in ("dev-synth", "test-synth"):
        assert _transcripts(other)[subset] == _transcripts(tiny)[subset]
        for path in (tiny / subset).rglob("*.flac"):
            assert (other / path.relative_to(tiny)).read_bytes() == path.read_bytes()
    assert _transcripts(other)["train-synth"] != _transcripts(tiny)["train-synth"]
