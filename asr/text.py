"""Text normalization and the character tokenizer.

LibriSpeech transcripts (``HELLO WORLD``) and user text (``Hello, world!``) go
through the same ``normalize_text`` so that references, training targets and
language-model text agree. Whatever is dropped is reported, never silently lost.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

BLANK = "<blank>"
CHARS = " '" + "abcdefghijklmnopqrstuvwxyz"  # 28 symbols; index 0 is the CTC blank

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u02bc": "'"})
_WORD_JOINERS = re.compile(r"[-\u2010-\u2015_/]+")  # "well-known" -> "well known"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Normalized:
    text: str  # normalized text: a-z, apostrophe and single spaces
    dropped: str = ""  # characters that had no place in the token set, in order of appearance


def normalize_text(text: str) -> Normalized:
    """Lower-case, fold accents (é -> e), map curly apostrophes and hyphens, drop the rest.

    Punctuation that only separates (``.,;:!?"()``) is dropped without being reported;
    anything else that is not a letter, apostrophe or space (digits, symbols, other
    scripts) is dropped and returned in ``dropped`` so callers can say what was lost.
    """
    text = unicodedata.normalize("NFKD", text).translate(_APOSTROPHES)
    text = _WORD_JOINERS.sub(" ", text.lower())
    kept, dropped = [], []
    for ch in text:
        if ch in CHARS:
            kept.append(ch)
        elif ch.isspace():
            kept.append(" ")
        elif unicodedata.combining(ch) or ch in '.,;:!?"()[]{}':
            continue
        else:
            dropped.append(ch)
            kept.append(" ")  # a dropped symbol still separates words: "3x" -> " x"
    words = [w.strip("'") for w in _SPACES.split("".join(kept))]
    return Normalized(" ".join(w for w in words if w), "".join(dropped))


@dataclass
class CharTokenizer:
    """Characters plus the CTC blank at index 0."""

    tokens: list[str] = field(default_factory=lambda: [BLANK, *CHARS])

    def __post_init__(self) -> None:
        self._index = {t: i for i, t in enumerate(self.tokens)}

    @property
    def blank(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids of already-normalized text; raises KeyError naming an unknown character."""
        try:
            return [self._index[ch] for ch in text]
        except KeyError as e:
            raise KeyError(f"character {e.args[0]!r} is not in the token set; normalize the text first") from None

    def decode(self, ids) -> str:
        return "".join(self.tokens[i] for i in ids if i != self.blank)

    def to_dict(self) -> dict:
        return {"type": "char", "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        if d.get("type") != "char":
            raise ValueError(f"unknown tokenizer type {d.get('type')!r}")
        return cls(tokens=list(d["tokens"]))
