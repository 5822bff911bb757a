"""n-gram language models for beam search, of words or of characters: build an ARPA file, read one back.

``build_lm(text, order, out)`` estimates an interpolated modified Kneser-Ney model
(Chen & Goodman 1998, as KenLM's ``lmplz`` does it: Heafield et al. 2013). It runs
``lmplz`` when ``tools/build_kenlm.sh`` has built it (fast, disk-backed, any corpus
size) and otherwise a pure-Python estimator with the same equations, so that CI and
users need no compiler. Both read the text through ``asr.text.normalize_text``, so the
LM's words are spelled exactly as the decoder spells them (lower case, apostrophes).

The Python estimator, per order n (1..N), with a(g) the count used for n-gram g:

* a(g) = raw count for the highest order and for n-grams that start with <s>;
  otherwise the continuation count |{v : v g was seen}|.
* discounts from the count-of-counts t_k of a at that order:
  Y = t1 / (t1 + 2 t2), D_k = k - (k + 1) Y t_{k+1} / t_k for k = 1, 2, 3+.
* p(w | c) = (a(c w) - D(a(c w))) / sum_x a(c x) + gamma(c) p(w | c'), c' = c without its
  first word; gamma(c) = (D1 N1(c .) + D2 N2(c .) + D3 N3+(c .)) / sum_x a(c x);
  unigrams interpolate with the uniform 1 / |V| (|V| counts <unk> and </s>, not <s>).
* the ARPA backoff of a context c is gamma(c); <unk> has only the uniform share.

A character LM (``unit="char"``) is the same estimator over each sentence's letters, every
word closed by ``|`` (``the cat`` -> ``t h e | c a t |``): the token LM that beam search
without a lexicon uses as it is, so that any spelling can come out (``asr.beam``).
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from asr.errors import UserError
from asr.io import atomic_open
from asr.text import WORD_SEP, normalize_text

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
MAX_ORDER = 6  # tools/build_kenlm.sh builds KenLM with KENLM_MAX_ORDER=6, as flashlight-text's wheel has it
UNITS = ("word", "char")
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # D1, D2, D3+ when count-of-counts cannot give them (lmplz's defaults)
_LIBRISPEECH_ID = re.compile(r"^\d+-\d+-\d+\s+")  # "1089-134686-0000 HE HOPED ..." in *.trans.txt


@dataclass
class TextStats:
    sentences: int = 0  # non-empty normalized lines
    words: int = 0  # running words, without <s> and </s>
    dropped: Counter = field(default_factory=Counter)  # characters normalize_text had no place for


@dataclass
class BuildResult:
    path: Path  # the LM file written (ARPA, or KenLM binary with binary=True)
    arpa: Path  # the ARPA file (== path unless binary)
    backend: str  # "lmplz" or "python"
    order: int  # n-gram order
    counts: list[int]  # n-grams per order, from the ARPA header
    text: TextStats  # what was read


# ---------------------------------------------------------------------------------------------
# Text


def read_sentences(paths: Iterable[str | os.PathLike], stats: TextStats | None = None,
                   unit: str = "word") -> Iterator[list[str]]:
    """Normalized word lists (``unit="char"``: letter lists, each word closed by ``|``), one per non-empty
    line of the text files.

    LibriSpeech transcript lines lose their utterance id first, so ``*.trans.txt`` files
    can be used as they are.
    """
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such text file (one sentence per line)")
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                norm = normalize_text(_LIBRISPEECH_ID.sub("", line, count=1))
                if stats is not None:
                    stats.dropped.update(norm.dropped)
                if norm.text:
                    words = norm.text.split(" ")
                    if stats is not None:
                        stats.sentences += 1
                        stats.words += len(words)
                    yield words if unit == "word" else [c for w in words for c in (*w, WORD_SEP)]


def write_normalized(paths: Iterable[str | os.PathLike], out: str | os.PathLike, unit: str = "word") -> TextStats:
    """The normalized text, one sentence per line: what lmplz reads."""
    stats = TextStats()
    with open(out, "w", encoding="utf-8") as f:
        for words in read_sentences(paths, stats, unit):
            f.write(" ".join(words) + "\n")
    return stats


# ---------------------------------------------------------------------------------------------
# The pure-Python interpolated modified Kneser-Ney estimator


@dataclass
class NGramModel:
    """Log10 probabilities and backoffs per order: ``probs[n-1][ngram]``, ``backoffs[n-1][context]``."""

    order: int
    probs: list[dict[tuple[str, ...], float]]
    backoffs: list[dict[tuple[str, ...], float]]


def count_ngrams(sentences: Iterable[list[str]], order: int) -> list[Counter]:
    """Raw counts of every n-gram of <s> w1 .. wk </s>, n = 1..order (n-grams start <s> only at position 0)."""
    counts = [Counter() for _ in range(order)]
    for words in sentences:
        s = (BOS, *words, EOS)
        for n in range(1, order + 1):
            c = counts[n - 1]
            for i in range(len(s) - n + 1):
                c[s[i:i + n]] += 1
    del counts[0][(BOS,)]  # <s> is never predicted; it gets probability 1 (log 0) like lmplz gives it
    return counts


def adjusted_counts(raw: list[Counter]) -> list[Counter]:
    """Kneser-Ney counts: continuation counts below the highest order, except n-grams starting with <s>."""
    order = len(raw)
    adjusted = [Counter() for _ in range(order)]
    adjusted[-1] = raw[-1]
    for n in range(2, order + 1):  # each distinct n-gram v g adds one left extension to g
        lower = adjusted[n - 2]
        if n - 1 < order:
            for gram in raw[n - 1]:
                lower[gram[1:]] += 1
    for n in range(1, order):
        for gram, c in raw[n - 1].items():
            if gram[0] == BOS:
                adjusted[n - 1][gram] = c
    return adjusted


def discounts(counts: Counter, n: int) -> tuple[float, float, float]:
    """Modified Kneser-Ney D1, D2, D3+ from count-of-counts (Chen & Goodman eq. 26); fallback if undefined."""
    t = Counter(c for c in counts.values() if c < 5)
    try:
        y = t[1] / (t[1] + 2 * t[2])
        d = tuple(k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3))
    except ZeroDivisionError:
        d = None
    if d is None or not all(0 <= d[k - 1] <= k for k in (1, 2, 3)):  # lmplz's range check
        print(f"lm: {n}-gram discounts cannot be estimated from counts of counts {dict(sorted(t.items()))} "
              f"(small or artificial text); using D1, D2, D3+ = {FALLBACK_DISCOUNTS}", file=sys.stderr)
        return FALLBACK_DISCOUNTS
    return d  # type: ignore[return-value]


def _context_stats(counts: Counter, d: tuple[float, float, float]) -> dict[tuple, tuple[float, float]]:
    """Per context c: (sum_x a(c x), gamma(c))."""
    total: dict[tuple, float] = defaultdict(float)
    mass: dict[tuple, float] = defaultdict(float)
    for gram, a in counts.items():
        ctx = gram[:-1]
        total[ctx] += a
        if a > 0:
            mass[ctx] += d[min(a, 3) - 1]
    return {ctx: (tot, mass[ctx] / tot) for ctx, tot in total.items()}


def kneser_ney(raw: list[Counter]) -> NGramModel:
    """Interpolated modified Kneser-Ney from raw counts (see the module docstring for the equations)."""
    order = len(raw)
    adjusted = adjusted_counts(raw)
    probs: list[dict] = []
    gammas: list[dict] = []
    for n in range(1, order + 1):
        a = adjusted[n - 1]
        d = discounts(a, n)
        ctx = _context_stats(a, d)
        p: dict[tuple, float] = {}
        if n == 1:
            total, gamma = ctx[()]
            vocab = len(a) + 1  # the words and </s> (a has no <s>), plus <unk>
            uniform = gamma / vocab
            p[(UNK,)] = uniform
            for gram, c in a.items():
                p[gram] = (c - d[min(c, 3) - 1]) / total + uniform
            p[(BOS,)] = 1.0
        else:
            lower = probs[-1]
            for gram, c in a.items():
                total, gamma = ctx[gram[:-1]]
                p[gram] = (c - d[min(c, 3) - 1]) / total + gamma * lower[gram[1:]]
        probs.append(p)
        gammas.append({c: g for c, (_, g) in ctx.items()})
    return _to_log10(probs, gammas, order)


def _to_log10(probs: list[dict], gammas: list[dict], order: int) -> NGramModel:
    """ARPA values: log10 p (capped at 0), and log10 gamma for n-grams that are contexts of the next order."""
    log_probs = [{g: min(0.0, math.log10(v)) for g, v in p.items()} for p in probs]
    backoffs = [{} for _ in range(order)]
    for n in range(1, order):
        for ctx, g in gammas[n].items():  # contexts of order n+1 are n-grams
            if ctx[-1] not in (EOS, UNK):
                backoffs[n - 1][ctx] = math.log10(g) if g > 0 else -99.0
    return NGramModel(order, log_probs, backoffs)


def write_arpa(model: NGramModel, path: str | os.PathLike) -> None:
    """The model as an ARPA file (atomically); n-grams sorted, lower orders carry backoffs."""
    with atomic_open(path, "w") as f:
        f.write("\\data\\\n")
        for n in range(1, model.order + 1):
            f.write(f"ngram {n}={len(model.probs[n - 1])}\n")
        for n in range(1, model.order + 1):
            f.write(f"\n\\{n}-grams:\n")
            bo = model.backoffs[n - 1]
            for gram in sorted(model.probs[n - 1]):
                line = f"{model.probs[n - 1][gram]:.7g}\t{' '.join(gram)}"
                if n < model.order:
                    line += f"\t{bo.get(gram, 0.0):.7g}"
                f.write(line + "\n")
        f.write("\n\\end\\\n")


def estimate_python(paths: Iterable[str | os.PathLike], order: int, out: str | os.PathLike,
                    unit: str = "word") -> TextStats:
    """Count, estimate and write the ARPA file in this process (memory: a few hundred bytes per n-gram)."""
    stats = TextStats()
    raw = count_ngrams(read_sentences(paths, stats, unit), order)
    if stats.sentences == 0:
        raise UserError("the text has no words after normalization: nothing to build an LM from")
    write_arpa(kneser_ney(raw), out)
    return stats


# ---------------------------------------------------------------------------------------------
# KenLM programs


def find_kenlm_program(name: str) -> str | None:
    """``lmplz`` or ``build_binary``: beside this Python (tools/build_kenlm.sh puts them there), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise UserError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def lmplz_memory(text_bytes: int) -> str:
    """lmplz's sort memory (-S): 10x the text, 64 MB to 4 GB. Its own default (80% of RAM) costs seconds
    of page faults even on a tiny text; what does not fit is sorted on disk."""
    return f"{max(64, min(4096, 10 * text_bytes >> 20))}M"


def estimate_lmplz(lmplz: str, paths: Iterable[str | os.PathLike], order: int, out: Path,
                   memory: str | None = None, unit: str = "word") -> TextStats:
    """Normalize the text to a temporary file and run lmplz on it; writes ``out`` atomically."""
    with tempfile.TemporaryDirectory(prefix="asr-lm-", dir=out.parent) as tmp:
        text = Path(tmp) / "text.txt"
        stats = write_normalized(paths, text, unit)
        if stats.sentences == 0:
            raise UserError("the text has no words after normalization: nothing to build an LM from")
        arpa = Path(tmp) / "lm.arpa"
        # --discount_fallback: small texts get lmplz's default discounts instead of an error, as in Python.
        memory = memory or lmplz_memory(text.stat().st_size)
        _run([lmplz, "-o", str(order), "--text", str(text), "--arpa", str(arpa), "-S", memory, "-T", tmp,
              "--discount_fallback"], "lmplz")
        os.replace(arpa, out)
    return stats


def build_lm(text_path: str | os.PathLike | list, order: int, out_path: str | os.PathLike, *,
             binary: bool = False, backend: str = "auto", memory: str | None = None,
             unit: str = "word") -> BuildResult:
    """Build an interpolated modified Kneser-Ney ARPA LM from text (one sentence per line).

    text_path: a file or a list of files (LibriSpeech ``*.trans.txt`` work as they are).
    backend: "auto" (lmplz when found, else Python), "lmplz" or "python".
    binary: also convert to a KenLM binary at ``out_path`` (needs build_binary); the ARPA
    file is then kept beside it as ``<out_path without suffix>.arpa``.
    memory: lmplz's sort memory (``-S``), e.g. "20%" or "2G"; None: see ``lmplz_memory``.
    unit: "word", or "char" for a character LM (see the module doc).
    """
    if unit not in UNITS:
        raise UserError(f"unknown LM unit {unit!r}: use {' or '.join(UNITS)}")
    if not 2 <= order <= MAX_ORDER:  # KenLM, which loads the file for beam search, refuses a unigram model
        raise UserError(f"--order {order}: use 2..{MAX_ORDER}")
    paths = [Path(p) for p in (text_path if isinstance(text_path, (list, tuple)) else [text_path])]
    for p in paths:
        if not p.is_file():
            raise UserError(f"{p}: no such text file (one sentence per line)")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    arpa = out.with_suffix(".arpa") if binary else out
    if binary and arpa == out:
        raise UserError(f"{out}: a binary LM needs a name other than *.arpa, e.g. {out.with_suffix('.bin')}")
    lmplz = find_kenlm_program("lmplz") if backend in ("auto", "lmplz") else None
    if backend == "lmplz" and lmplz is None:
        raise UserError("lmplz not found: run tools/build_kenlm.sh, or use the Python estimator (backend python)")
    if backend not in ("auto", "lmplz", "python"):
        raise UserError(f"unknown LM backend {backend!r}: use auto, lmplz or python")
    if lmplz:
        stats = estimate_lmplz(lmplz, paths, order, arpa, memory, unit)
    else:
        stats = estimate_python(paths, order, arpa, unit)
    if binary:
        tool = find_kenlm_program("build_binary")
        if tool is None:
            raise UserError(f"--binary needs KenLM's build_binary: run tools/build_kenlm.sh (the ARPA file {arpa} "
                            "was written and works with the decoder as it is)")
        tmp = out.with_name(f".{out.name}.tmp")  # build_binary writes a path: beside it, then rename
        try:
            _run([tool, str(arpa), str(tmp)], "build_binary")
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return BuildResult(out, arpa, "lmplz" if lmplz else "python", order, arpa_counts(arpa), stats)


# ---------------------------------------------------------------------------------------------
# Reading ARPA files


def arpa_counts(path: str | os.PathLike) -> list[int]:
    """The ``ngram n=count`` values of an ARPA header."""
    counts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("ngram "):
                counts.append(int(line.split("=", 1)[1]))
            elif line.startswith("\\1-grams:"):
                break
    return counts


def is_arpa(path: str | os.PathLike) -> bool:
    """ARPA text (starts with ``\\data\\``) rather than a KenLM binary."""
    with open(path, "rb") as f:
        head = f.read(64)
    return head.lstrip().startswith(b"\\data\\")


GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str | os.PathLike) -> bool:
    """A gzip-compressed file (LibriSpeech's official LMs come as ``NAME.arpa.gz``)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def upper_case_share(vocab: Iterable[str]) -> tuple[float, str]:
    """The share of an LM's words (not ``<s>`` and the like) that hold an upper-case letter, and one of them.
    The decoder spells lower case (``normalize_text``), so to a KenLM query such a word does not exist."""
    words = [w for w in vocab if not w.startswith("<")]
    upper = [w for w in words if w != w.lower()]
    example = next((w for w in upper if w.isalpha()), upper[0] if upper else "")
    return (len(upper) / len(words) if words else 0.0), example


@dataclass
class ConvertResult:
    path: Path
    counts: list[int]  # n-grams per order, from the \\data\\ section
    lowered: int  # unigrams whose spelling changed


def convert_arpa(src: str | os.PathLike, out: str | os.PathLike, progress: bool = True) -> ConvertResult:
    """An ARPA LM (plain or gzip-compressed) as plain ARPA text with every word lower-cased, written atomically.

    This is what LibriSpeech's official LMs (OpenSLR 11: upper case, ``.arpa.gz``) need before beam search,
    whose lexicon and queries spell lower case. Probabilities and backoffs are copied as they are. Two words
    that differ only in case would become one n-gram twice, which KenLM refuses: that is an error naming them
    (any clash in a longer n-gram shows in the 1-grams, since each of its words is a 1-gram too).
    """
    import gzip

    from tqdm import tqdm

    src, out = Path(src), Path(out)
    if not src.is_file():
        raise UserError(f"{src}: no such file")
    packed = is_gzip(src)
    counts: list[int] = []
    seen: dict[str, str] = {}  # lower-cased 1-gram -> as written
    section = 0
    try:
        with open(src, "rb") as raw, atomic_open(out, "w") as g, \
                tqdm(total=src.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"convert {src.name}",
                     disable=not progress, file=sys.stderr, mininterval=1) as bar:
            f = io.TextIOWrapper(gzip.GzipFile(fileobj=raw) if packed else raw, encoding="utf-8")
            head = next((line for line in f if line.strip()), "")
            if head.strip() != "\\data\\":
                raise UserError(f"{src}: not an ARPA file (it starts {head.strip()[:40]!r}); a KenLM binary cannot "
                                f"be converted: convert the ARPA file it was built from")
            g.write(head)
            for i, line in enumerate(f):
                if line.startswith("\\"):
                    m = re.fullmatch(r"\\(\d+)-grams:", line.strip())
                    section = int(m.group(1)) if m else 0
                elif line.startswith("ngram "):
                    counts.append(int(line.split("=", 1)[1]))
                elif section == 1 and line.strip():
                    word = line.split()[1]
                    if (low := word.lower()) in seen:
                        raise UserError(f"{src}: the words {seen[low]!r} and {word!r} differ only in case, so this "
                                        f"LM cannot be lower-cased as it is; build one from lower-case text "
                                        f"(asr lm build)")
                    seen[low] = word
                g.write(line.lower())
                if i % 65536 == 0:
                    bar.update(raw.tell() - bar.n)
            bar.update(raw.tell() - bar.n)
    except (EOFError, UnicodeDecodeError, gzip.BadGzipFile) as e:
        raise UserError(f"{src}: cannot read it as an ARPA file ({e or type(e).__name__}); is it whole? "
                        f"download it again") from None
    if not seen:
        raise UserError(f"{src}: no 1-grams found; is it an ARPA file?")
    return ConvertResult(out, counts, sum(low != word for low, word in seen.items()))


def arpa_unigrams(path: str | os.PathLike) -> dict[str, float]:
    """word -> log10 unigram probability, read from the 1-gram section only."""
    words: dict[str, float] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("\\1-grams:"):
                break
        for line in f:
            parts = line.split("\t")
            if len(parts) < 2:
                if line.startswith("\\"):
                    break
                continue
            words[parts[1].strip()] = float(parts[0])
    return words


@dataclass
class ArpaModel:
    """A whole ARPA file in memory, for tests and inspection: ``logprob(word, context)``."""

    order: int
    header: list[int]  # counts from the \\data\\ section
    probs: list[dict[tuple[str, ...], float]]  # log10 p per order
    backoffs: list[dict[tuple[str, ...], float]]  # log10 backoff per order

    def logprob(self, word: str, context: tuple[str, ...] = ()) -> float:
        """log10 p(word | context) with ARPA backoff; unknown words score as <unk>."""
        if (word,) not in self.probs[0]:
            word = UNK
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        penalty = 0.0
        while True:
            gram = (*context, word)
            p = self.probs[len(gram) - 1].get(gram)
            if p is not None:
                return penalty + p
            penalty += self.backoffs[len(context) - 1].get(context, 0.0)
            context = context[1:]


def read_arpa(path: str | os.PathLike) -> ArpaModel:
    header: list[int] = []
    probs: list[dict] = []
    backoffs: list[dict] = []
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("ngram "):
                header.append(int(line.split("=", 1)[1]))
            elif re.fullmatch(r"\\\d+-grams:", line):
                n = int(line[1:].split("-")[0])
                probs.append({})
                backoffs.append({})
            elif line.startswith("\\"):
                continue
            elif n:
                parts = line.split("\t")
                gram = tuple(parts[1].split(" "))
                probs[n - 1][gram] = float(parts[0])
                if len(parts) > 2:
                    backoffs[n - 1][gram] = float(parts[2])
    return ArpaModel(len(probs), header, probs, backoffs)
