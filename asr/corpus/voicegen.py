"""Made-up espeak-ng voices for training: new voice variants bred from the training variants.

An espeak-ng variant is a small text file of settings (``voices/!v/NAME``): formant frequencies, heights and
widths, pitch, echo, breathiness, voicing, tone, roughness, the Klatt synthesizer and more. The corpus's test
split speaks with variants never heard in training, and the model's errors gather on the test variants least
like any training one (recipes/demo/README.md, "Made-up voices"). So the training split can also speak with
variants made here, each a *crossover* of the training variants (every group of settings taken from a training
variant drawn for that group) and a *mutation* (formant, pitch and echo values scaled by random factors). Only
training variants are parents: nothing of a dev or test variant gets into training.

espeak-ng reads variants from its data folder, so the made-up ones live in a private mirror of it: symbolic
links to everything in the system's ``espeak-ng-data`` but the voices, then of its voices only the English
family's (``lang/gmw``), and ``voices/!v`` with the made-up files alone. espeak-ng lists every voice file of its
data folder when it selects a voice, and crashes once there are more than 349 (its ``N_VOICES_LIST``; the
system's folder holds 322, the mbrola ones included). espeak-ng with ``--path`` that folder is otherwise the
system's.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Sequence

from asr.io import atomic_write_text

PREFIX = "madeup"  # made-up variant file names: madeup001, madeup002, ...
# Settings taken together from one parent (a keyword's lines, e.g. all "formant" lines, travel as one group)
GROUPS = (("formant",), ("pitch",), ("echo",), ("breath", "breathw"), ("voicing",), ("tone",), ("flutter",),
          ("roughness",), ("consonants",), ("intonation",), ("stressAdd", "stressAmp", "stressLength"),
          ("klatt",), ("gender",))
FORMANT_FREQ = (0.88, 1.15)  # per-formant frequency factor range of the mutation (log-uniform)
FORMANT_SHAPE = (0.8, 1.25)  # per-formant height and width factor range (log-uniform)
PITCH = (0.85, 1.2)  # base and range pitch factor (log-uniform)
ECHO = (0.7, 1.4)  # echo delay and amplitude factor (log-uniform)
LANGUAGES = "gmw"  # the folder of lang/ mirrored: West Germanic, English among them (10 voice files in 1.51)
MAX_VARIANTS = 300  # made-up variants at most: with the mirrored languages' voices, below espeak's 349


def parse_variant(text: str) -> dict[str, list[list[str]]]:
    """Keyword -> the argument lists of its lines (``formant`` has one line per formant)."""
    out: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        words = line.split("//")[0].split()
        if words:
            out.setdefault(words[0], []).append(words[1:])
    return out


def _factor(rng: random.Random, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _scaled(value: str, factor: float, lo: int = 0, hi: int = 10_000) -> str:
    try:
        return str(min(hi, max(lo, round(int(value) * factor))))
    except ValueError:
        return value


def _formant_range(parents: Sequence[dict[str, list[list[str]]]]) -> dict[str, tuple[int, int]]:
    """Formant number -> (lowest, highest) frequency factor, percent, among the parents' own values."""
    seen: dict[str, list[int]] = {}
    for parent in parents:
        for args in parent.get("formant", []):
            if len(args) > 1 and args[1].lstrip("-").isdigit():
                seen.setdefault(args[0], []).append(int(args[1]))
    return {k: (min(v), max(v)) for k, v in seen.items()}


def _mutate(key: str, lines: list[list[str]], rng: random.Random, freq_range: dict[str, tuple[int, int]]
            ) -> list[list[str]]:
    if key == "formant":  # formant N FREQ% HEIGHT% WIDTH% [...]: scale each formant's own values
        out = []
        for args in lines:
            f, s1, s2 = _factor(rng, FORMANT_FREQ), _factor(rng, FORMANT_SHAPE), _factor(rng, FORMANT_SHAPE)
            lo, hi = freq_range.get(args[0], (0, 400))  # frequencies stay within the parents' own: beyond, espeak
            out.append(args[:1] + [_scaled(v, x, *bounds)  # crashed (a 4th formant at 298 %, flutter 20)
                                   for v, x, bounds in zip(args[1:4], (f, s1, s2), ((lo, hi), (0, 400), (0, 400)))]
                       + args[4:])
        return out
    if key == "pitch":  # pitch BASE RANGE, Hz
        return [[_scaled(v, _factor(rng, PITCH), 40, 500) for v in args[:2]] + args[2:] for args in lines]
    if key == "echo":  # echo DELAY_MS AMPLITUDE
        return [[_scaled(v, _factor(rng, ECHO), 0, 10_000) for v in args[:2]] + args[2:] for args in lines]
    return lines


def made_up_variant(name: str, parents: Sequence[dict[str, list[list[str]]]], rng: random.Random,
                    freq_range: dict[str, tuple[int, int]]) -> str:
    """The text of one new variant file: each settings group from a random parent (absent there: espeak's
    default), formants (frequencies within ``freq_range``, the parents' ``_formant_range``), pitch and echo
    mutated."""
    lines = ["language variant", f"name {name}"]
    for group in GROUPS:
        parent = rng.choice(parents)
        for key in group:
            for args in _mutate(key, parent.get(key, []), rng, freq_range):
                lines.append(" ".join([key, *args]))
    return "\n".join(lines) + "\n"


def make_voices(out: Path, system_data: Path, parents: Sequence[str], n: int, seed: int
                ) -> tuple[tuple[str, ...], Path]:
    """``n`` made-up variants bred from the variant files ``parents`` of ``system_data``, written to a private data
    folder under ``out`` (``private_data``); returns their names and that folder. Deterministic from ``seed``."""
    if n > MAX_VARIANTS:
        raise ValueError(f"{n} made-up variants: espeak-ng lists at most 349 voices, so at most {MAX_VARIANTS}")
    folder = system_data / "voices" / "!v"
    parsed = [parse_variant((folder / p).read_text(encoding="utf-8", errors="replace")) for p in sorted(parents)]
    rng = random.Random(f"asr-made-up-voices-{seed}")
    data = private_data(out, system_data)
    names = tuple(f"{PREFIX}{i:03d}" for i in range(1, n + 1))
    freq_range = _formant_range(parsed)
    for name in names:
        path, text = data / "voices" / "!v" / name, made_up_variant(name, parsed, rng, freq_range)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
    return names, data


def private_data(out: Path, system_data: Path) -> Path:
    """A mirror of ``system_data`` (espeak-ng-data) under ``out`` for made-up variants (voices/!v, empty at first);
    returns the folder to pass as espeak's data path. Safe to re-run: links and files already there are kept."""
    data = out / "espeak-ng-data"
    _mirror(system_data, data, skip={"voices", "lang"})
    _mirror(system_data / "lang", data / "lang", only={LANGUAGES})
    (data / "voices" / "!v").mkdir(parents=True, exist_ok=True)
    return data


def _mirror(src: Path, dst: Path, skip: set[str] = frozenset(), only: set[str] | None = None) -> None:
    """``dst`` holds a symbolic link to every entry of ``src`` but those in ``skip`` (``only``: to these alone)."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        link = dst / entry.name
        if entry.name in skip or (only is not None and entry.name not in only) or link.is_symlink() or link.exists():
            continue
        link.symlink_to(Path(entry.path).resolve())
