"""Text normalization and the tokenizers: characters, or BPE pieces (sentencepiece).

LibriSpeech transcripts (``HELLO WORLD``) and user text (``Hello, world!``) go
through the same ``normalize_text`` so that references, training targets and
language-model text agree. Whatever is dropped is reported, never silently lost.

Both tokenizers share one interface: ``tokens`` (index 0 is the CTC blank), ``blank``,
``encode(normalized_text) -> ids``, ``decode(ids) -> text`` and ``to_dict()`` /
``tokenizer_from_dict()``, whose dict holds only strings, ints and tensors so that a
checkpoint carrying it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

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


WORD_START = "\u2581"  # sentencepiece's mark on a piece that starts a word
WORD_SEP = "|"  # the word separator in flashlight's tokens (our " "), lexicons and character LMs (asr.lm, asr.beam)


class _BlankFirst:
    """What both tokenizers share: ``self.tokens`` lists every token, the CTC blank first."""

    tokens: list[str]

    @property
    def blank(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class CharTokenizer(_BlankFirst):
    """Characters plus the CTC blank at index 0."""

    tokens: list[str] = field(default_factory=lambda: [BLANK, *CHARS])

    def __post_init__(self) -> None:
        self._index = {t: i for i, t in enumerate(self.tokens)}

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


class BPETokenizer(_BlankFirst):
    """Sentencepiece BPE pieces plus the CTC blank at index 0 (our id = sentencepiece id + 1).

    Pieces carry sentencepiece's word-start mark ``▁``, so ``decode`` restores the spaces.
    ``model_proto`` is the serialized sentencepiece model (the bytes of a ``.model`` file).
    """

    def __init__(self, model_proto: bytes):
        self.model_proto = bytes(model_proto)
        self._load()

    def _load(self) -> None:
        import sentencepiece as spm

        self._sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        self.tokens = [BLANK, *(self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size()))]
        self._unk = self._sp.unk_id()

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BPETokenizer":
        return cls(Path(path).read_bytes())

    def __getstate__(self) -> dict:  # DataLoader workers may pickle the dataset; the C++ object cannot be
        return {"model_proto": self.model_proto}

    def __setstate__(self, state: dict) -> None:
        self.model_proto = state["model_proto"]
        self._load()

    def encode(self, text: str) -> list[int]:
        """Token ids of already-normalized text; raises KeyError when a character has no piece."""
        ids = self._sp.encode(text)
        if self._unk in ids:
            missing = sorted({ch for ch in text if ch != " " and self._sp.piece_to_id(ch) == self._unk})
            raise KeyError(f"character(s) {''.join(missing)!r} not in the BPE model; normalize the text first")
        return [i + 1 for i in ids]

    def decode(self, ids) -> str:
        return self._sp.decode([int(i) - 1 for i in ids if int(i) != self.blank])

    def to_dict(self) -> dict:
        import torch

        proto = torch.frombuffer(bytearray(self.model_proto), dtype=torch.uint8).clone()
        return {"type": "bpe", "tokens": list(self.tokens), "model": proto}

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        if d.get("type") != "bpe":
            raise ValueError(f"unknown tokenizer type {d.get('type')!r}")
        model = d["model"]
        return cls(model.numpy().tobytes() if hasattr(model, "numpy") else bytes(model))


Tokenizer = CharTokenizer | BPETokenizer


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """The tokenizer a checkpoint's ``tokenizer`` entry describes (``to_dict`` of either kind)."""
    kinds = {"char": CharTokenizer, "bpe": BPETokenizer}
    if d.get("type") not in kinds:
        raise ValueError(f"unknown tokenizer type {d.get('type')!r} (known: {', '.join(kinds)})")
    return kinds[d["type"]].from_dict(d)


def train_bpe(texts: Iterable[str], vocab_size: int, out: str | os.PathLike) -> BPETokenizer:
    """Train a sentencepiece BPE model on normalized ``texts``; written atomically to ``out``.

    ``vocab_size`` counts sentencepiece pieces including ``<unk>`` (the model adds the blank).
    It is a soft limit: a small corpus yields fewer pieces. Every letter and the apostrophe
    get a piece even when the texts lack them, so any normalized text can be encoded.
    """
    import io

    import sentencepiece as spm

    from asr.errors import UserError
    from asr.io import atomic_write_bytes

    texts = [t for t in texts if t]
    if not texts:
        raise UserError(f"{out}: no text to train the BPE model on")
    required = CHARS.strip()  # every letter and the apostrophe; sentencepiece adds its word marker itself
    least = len(required) + 2  # + the word marker and <unk>: 29 pieces
    if vocab_size < least:
        raise UserError(f"tokenizer.vocab_size={vocab_size}: need at least {least} pieces "
                        "(one per letter and apostrophe, the word marker and <unk>)")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=buf, vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, required_chars=required, normalization_rule_name="identity",
        unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, hard_vocab_limit=False, num_threads=1, minloglevel=2,
        input_sentence_size=2_000_000, shuffle_input_sentence=True,
    )
    atomic_write_bytes(out, buf.getvalue())
    return BPETokenizer(buf.getvalue())


def build_tokenizer(cfg, train_texts: Iterable[str] | None = None) -> Tokenizer:
    """The tokenizer for training with ``cfg`` (a TrainConfig).

    Resuming (``cfg.resume`` and ``RUN_DIR/last.pt``): the checkpoint's tokenizer, whatever
    ``cfg.tokenizer`` says, since the model's output layer was sized for it. Fine-tuning
    (``cfg.init_from``): that checkpoint's tokenizer, of the type ``cfg.tokenizer`` names. Otherwise
    ``char``, or ``bpe`` loaded from ``tokenizer.model`` (default ``RUN_DIR/bpe.model``),
    trained there first from ``train_texts`` (default: the normalized transcripts of
    ``data.train_manifest``) when the file does not exist. Under DDP rank 0 trains it.
    """
    from asr.errors import UserError

    run_dir = Path(cfg.run_dir)
    last = run_dir / "last.pt"
    if cfg.resume and last.is_file():
        import torch

        d = torch.load(last, map_location="cpu", weights_only=True, mmap=True)["tokenizer"]
        if d.get("type") != cfg.tokenizer.type:
            print(f"warning: {last} was trained with {d.get('type')} tokens; tokenizer.type={cfg.tokenizer.type} "
                  f"is ignored while resuming", file=sys.stderr)
        return tokenizer_from_dict(d)
    if cfg.init_from:  # fine-tuning: the output layer was trained for the checkpoint's tokens
        from asr.checkpoint import load_checkpoint

        d = load_checkpoint(cfg.init_from, mmap=True)["tokenizer"]  # train() loads the weights
        if d.get("type") != cfg.tokenizer.type:
            raise UserError(f"init_from={cfg.init_from} was trained with {d.get('type')} tokens, but "
                            f"tokenizer.type={cfg.tokenizer.type}: set tokenizer.type={d.get('type')} (its tokens "
                            f"are used) or start from another checkpoint")
        return tokenizer_from_dict(d)
    t = cfg.tokenizer
    if t.type == "char":
        return CharTokenizer()
    if t.type != "bpe":
        raise UserError(f"tokenizer.type={t.type!r}: use 'char' or 'bpe'")
    path = Path(t.model) if t.model else run_dir / "bpe.model"
    if not path.is_file():
        import torch.distributed as td

        ddp = td.is_available() and td.is_initialized()
        if not ddp or td.get_rank() == 0:
            if train_texts is None:
                from asr.manifest import read_manifest

                utts = read_manifest(cfg.data.train_manifest, quiet=True)
                train_texts = (normalize_text(u.text).text for u in utts)
            tok = train_bpe(train_texts, t.vocab_size, path)
            print(f"{path}: BPE model of {len(tok) - 1} pieces trained on the training transcripts", file=sys.stderr)
        if ddp:
            td.barrier()
    return BPETokenizer.load(path)
