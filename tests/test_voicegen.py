"""Made-up espeak-ng voices (asr.corpus.voicegen): bred from the training variants only, deterministic, within the
parents' formant range, spoken from a private data folder, and by their accent's own voice where espeak-ng crashes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asr.corpus import synth, voicegen
from asr.corpus.synth import SynthConfig

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")

# A variant this generator once drew (before formant frequencies were kept within the parents' range) on which
# espeak-ng 1.51 crashes with a segmentation fault for this sentence, accent, speed and pitch.
CRASHING = """language variant
name crashing
formant 0 81 81 96 80
formant 1 77 66 114 100
formant 2 87 67 82
formant 3 10 10 10
formant 4 298 311
formant 5 115 0 0
formant 6 86 73 86
formant 7 89 79 73
formant 8 84 93 108
pitch 65 102
echo 25 771
voicing 165
flutter 20
roughness 0
consonants 80 100
intonation 1
gender female
"""
CRASH_CASE = ("en-gb-scotland", "she kept that dirty toy in the jungle before lunch", 206, 29)


def _system_and_parents():
    voices = synth.discover_voices()
    return Path(voices.data_dir), synth.split_variants(voices.variants, SynthConfig())["train"]


@needs_espeak
def test_made_up_variants_come_from_the_parents_alone_and_are_deterministic(tmp_path):
    system, parents = _system_and_parents()
    names, data = voicegen.make_voices(tmp_path / "a", system, parents, 12, seed=0)
    assert names == tuple(f"madeup{i:03d}" for i in range(1, 13))
    parsed = [voicegen.parse_variant((system / "voices" / "!v" / p).read_text(errors="replace")) for p in parents]
    keys = {k for p in parsed for k in p} | {"language", "name"}
    lo_hi = voicegen._formant_range(parsed)
    texts = {n: (data / "voices" / "!v" / n).read_text() for n in names}
    for text in texts.values():
        made = voicegen.parse_variant(text)
        assert set(made) <= keys
        for args in made.get("formant", []):
            assert lo_hi[args[0]][0] <= int(args[1]) <= lo_hi[args[0]][1], args
    assert len(set(texts.values())) == len(texts)  # every one its own
    again, data2 = voicegen.make_voices(tmp_path / "b", system, parents, 12, seed=0)
    assert {n: (data2 / "voices" / "!v" / n).read_text() for n in again} == texts
    _, data3 = voicegen.make_voices(tmp_path / "c", system, parents, 12, seed=1)
    assert (data3 / "voices" / "!v" / "madeup001").read_text() != texts["madeup001"]


@needs_espeak
def test_an_utterance_espeak_crashes_on_is_spoken_by_its_accent_instead(tmp_path, capfd):
    system, _ = _system_and_parents()
    data = voicegen.private_data(tmp_path, system)
    (data / "voices" / "!v" / "crashing").write_text(CRASHING)
    (data / "voices" / "!v" / "sound").write_text(CRASHING.replace("formant 4 298 311\n", ""))
    accent, text, speed, pitch = CRASH_CASE
    with pytest.raises(synth.UserError):  # the program crashes (a segmentation fault) on this one
        synth.espeak_wav(f"{accent}+crashing", text, speed, pitch, str(data))

    def job(variant, path):
        return synth.Job(str(tmp_path / f"{variant}.flac"), f"{accent}+{variant}" if variant else accent, text, speed,
                         pitch, 16000, 0.15, path)

    for j in (job("crashing", str(data)), job("sound", str(data)), job("", None)):
        synth.render(j)  # in this process: a crash here would end the test run
    assert "is spoken by en-gb-scotland instead" in capfd.readouterr().err
    flac = {name: (tmp_path / f"{name}.flac").read_bytes() for name in ("crashing", "sound", "")}
    assert flac["crashing"] == flac[""] != flac["sound"]


@needs_espeak
def test_private_data_holds_the_made_up_variants_and_english_voices_only(tmp_path):
    system, parents = _system_and_parents()
    names, data = voicegen.make_voices(tmp_path, system, parents, 2, seed=0)
    assert sorted(p.name for p in (data / "voices" / "!v").iterdir()) == list(names)
    assert [p.name for p in (data / "lang").iterdir()] == [voicegen.LANGUAGES]
    made = synth.espeak_wav(f"en-us+{names[0]}", synth.PROBE_TEXT, path=str(data))
    base = synth.espeak_wav("en-us", synth.PROBE_TEXT, path=str(data))
    assert base == synth.espeak_wav("en-us", synth.PROBE_TEXT)  # the mirror speaks the system's voices as they are
    assert made != base


def test_too_many_made_up_variants_are_refused():
    with pytest.raises(Exception, match="made_up_voices must be 0..300"):
        SynthConfig(made_up_voices=301).validate()
    assert "made_up_voices" not in SynthConfig(made_up_voices=0).identity()  # as corpora made before the field
    assert SynthConfig(made_up_voices=5).identity()["made_up_voices"] == 5
