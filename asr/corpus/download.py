"""Download and extract corpus archives: resumable, checksum-verified, atomically extracted.

Standard library only (urllib) so downloading adds no dependency. The pieces:

- ``fetch(url, dest, checksum)``: HTTP download into ``dest.part``; a re-run continues it
  with an HTTP Range request. The finished file is verified before it is renamed to ``dest``;
  a bad checksum deletes the part file.
- ``extract_atomically(archive, member, target)``: unpack into a temporary folder beside
  ``target``, write a completion marker, then rename ``member`` to ``target`` in one step.
  A re-run sees the marker and skips; an interrupted extraction leaves nothing behind.
- ``download_librispeech(subsets, out_dir)``: the two above for LibriSpeech subsets, so that
  ``OUT/LibriSpeech/SUBSET`` is ready for ``prepare_librispeech``.
- ``download_openslr(name, out_dir)``: the same for the noise and reverberation corpora that speech
  recipes mix in: MUSAN (``OUT/musan``, its ``noise/`` folder for ``data.noise``) and the room
  impulse responses and noises of OpenSLR 28 (``OUT/RIRS_NOISES``, its ``simulated_rirs/`` for
  ``data.rir``). That one is a zip archive; both kinds extract the same way.

Checksums: the MD5 sums OpenSLR publishes for resources 12 and 31 (``md5sum.txt`` beside the
archives), as copied in PaddleSpeech's ``dataset/librispeech/librispeech.py`` and
``examples/dataset/mini_librispeech/mini_librispeech.py``; for resources 17 and 28, as checked by
wespeaker's ``tools/download_data.sh``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import socket
import ssl
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from asr.errors import UserError

OPENSLR_MIRROR = "https://www.openslr.org/resources/12"  # LibriSpeech (resource 12)
MINI_MIRROR = "https://www.openslr.org/resources/31"  # mini LibriSpeech (resource 31)
COMPLETE_MARKER = ".complete"  # written inside an extracted folder, last, before the rename
CHUNK = 1 << 20  # bytes read per network call: 1 MiB
TIMEOUT_S = 60.0  # socket timeout per network call, seconds


@dataclass(frozen=True)
class Checksum:
    algorithm: str  # a hashlib name: "md5" or "sha256"
    hexdigest: str  # the published digest, lower-case hex

    @classmethod
    def of_hex(cls, hexdigest: str) -> "Checksum":
        """MD5 or SHA-256, told apart by the digest's length (32 or 64 hex digits)."""
        return cls("md5" if len(hexdigest) == 32 else "sha256", hexdigest)

    def of(self, path: Path) -> str:
        h = hashlib.new(self.algorithm)
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
        return h.hexdigest()


# subset -> MD5 of SUBSET.tar.gz as published by OpenSLR.
LIBRISPEECH_MD5 = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
    "dev-clean-2": "6d7ab67ac6a1d2c993d050e16d61080d",  # mini LibriSpeech (resource 31)
    "train-clean-5": "5df7d4e78065366204ca6845bb08f490",  # mini LibriSpeech (resource 31)
}
MINI_SUBSETS = ("dev-clean-2", "train-clean-5")


LM_MIRROR = "https://www.openslr.org/resources/11"  # LibriSpeech's language models (resource 11)
# LM -> SHA-256 of NAME.arpa.gz. OpenSLR publishes no checksums for these files; the digests are the ones that
# RWTH i6's public recipes pin for the same URLs (rwth-i6/i6_experiments: common/datasets/librispeech/
# language_model.py for 3-gram and 4-gram; 3-gram.pruned.1e-7 in one of its users' setups). A private mirror:
# --checksums with MD5 or SHA-256 lines.
LIBRISPEECH_LM_SHA256 = {
    "3-gram.pruned.1e-7": "71dd880667cb6ea3942bb1982988c91fb1208839a21911eeec7e31c857c4bdfb",  # about 34 MB
    "3-gram": "263649573475c2991d3e755eb4e690c9d2656f2b3283a1eb589e1e4e174bf874",  # about 0.7 GB
    "4-gram": "f2b2d1507637ddf459d3579159f7e8099ed7d77452ff1059aeeeaea33d274613",  # about 1.3 GB
}


@dataclass(frozen=True)
class OpenSLRArchive:
    mirror: str  # base URL of the resource
    archive: str  # file name of the archive there
    md5: str  # published MD5 of the archive
    member: str  # the folder the archive unpacks to
    use: str  # what to point the training config at, for the message after the download


OPENSLR_CORPORA = {
    "musan": OpenSLRArchive("https://www.openslr.org/resources/17", "musan.tar.gz",
                            "0c472d4fc0c5141eca47ad1ffeb2a7df", "musan",
                            "data.noise=OUT/musan/noise (music/ and speech/ are there too); 11 GB"),
    "rirs": OpenSLRArchive("https://www.openslr.org/resources/28", "rirs_noises.zip",
                           "e6f48e257286e05de56413b4779d8ffb", "RIRS_NOISES",
                           "data.rir=OUT/RIRS_NOISES/simulated_rirs (real_rirs_isotropic_noises/ mixes responses "
                           "with noise recordings; pointsource_noises/ suits data.noise); 1.2 GB"),
}


def download_librispeech(subsets: list[str], out_dir: str | os.PathLike, mirror: str = OPENSLR_MIRROR,
                         mini_mirror: str | None = None, checksums: dict[str, str] | None = None,
                         keep_archives: bool = False, progress: bool = True) -> dict[str, Path]:
    """Download and extract LibriSpeech subsets to ``OUT/LibriSpeech/SUBSET``; returns subset -> folder.

    ``mirror`` serves ``SUBSET.tar.gz`` for the full corpus; the mini subsets come from
    ``mini_mirror`` (default: ``mirror`` with its trailing ``/12`` replaced by ``/31``, or
    ``mirror`` itself when it does not end in ``/12``). ``checksums`` (subset -> MD5) replaces
    the published table, for tests and private mirrors. Safe to re-run: finished subsets are
    skipped, an interrupted download resumes. Archives are deleted after extraction unless
    ``keep_archives``.
    """
    table = LIBRISPEECH_MD5 if checksums is None else checksums
    unknown = [s for s in subsets if s not in table]
    if unknown or not subsets:
        raise UserError(f"unknown LibriSpeech subset(s): {', '.join(unknown) or '(none given)'}; "
                        f"valid: {', '.join(table)}")
    mirror = mirror.rstrip("/")
    if mini_mirror is None:
        mini_mirror = mirror[: -len("/12")] + "/31" if mirror.endswith("/12") else mirror
    out_dir = Path(out_dir)
    done = {}
    for subset in dict.fromkeys(subsets):  # de-duplicated, order kept
        target = out_dir / "LibriSpeech" / subset
        if (target / COMPLETE_MARKER).is_file():
            print(f"{target}: already downloaded, skipping", file=sys.stderr)
            done[subset] = target
            continue
        base = mini_mirror.rstrip("/") if subset in MINI_SUBSETS else mirror
        archive = out_dir / f"{subset}.tar.gz"
        fetch(f"{base}/{subset}.tar.gz", archive, Checksum.of_hex(table[subset]), progress=progress)
        extract_atomically(archive, f"LibriSpeech/{subset}", target, progress=progress)
        if not keep_archives:
            archive.unlink()
        done[subset] = target
    return done


def download_openslr(name: str, out_dir: str | os.PathLike, mirror: str | None = None, md5: str | None = None,
                     keep_archive: bool = False, progress: bool = True) -> Path:
    """Download and extract one of OPENSLR_CORPORA to ``OUT/MEMBER``; returns that folder. ``mirror`` and
    ``md5`` replace the published ones (private mirrors, tests). Safe to re-run, as download_librispeech."""
    if name not in OPENSLR_CORPORA:
        raise UserError(f"unknown corpus {name!r}; valid: {', '.join(OPENSLR_CORPORA)}")
    spec = OPENSLR_CORPORA[name]
    out_dir = Path(out_dir)
    target = out_dir / spec.member
    if (target / COMPLETE_MARKER).is_file():
        print(f"{target}: already downloaded, skipping", file=sys.stderr)
        return target
    archive = fetch(f"{(mirror or spec.mirror).rstrip('/')}/{spec.archive}", out_dir / spec.archive,
                    Checksum.of_hex(md5 or spec.md5), progress=progress)
    extract_atomically(archive, spec.member, target, progress=progress)
    if not keep_archive:
        archive.unlink()
    return target


def download_librispeech_lm(names: list[str], out_dir: str | os.PathLike, mirror: str = LM_MIRROR,
                            checksums: dict[str, str] | None = None, keep_archives: bool = False,
                            progress: bool = True) -> dict[str, Path]:
    """LibriSpeech's official n-gram LMs as ``OUT/librispeech-lm/NAME.arpa``, ready for ``--lm``; returns name -> file.

    Each ``NAME.arpa.gz`` is downloaded (resumable, checksum-verified) and converted by ``asr.lm.convert_arpa``:
    decompressed, its upper-case words lower-cased as the decoder spells them. ``checksums`` (name -> MD5 or
    SHA-256 hex) replaces the pinned digests it names. Safe to re-run: an LM whose ARPA file exists (written atomically)
    is skipped. The archive is deleted after the conversion unless ``keep_archives``.
    """
    from asr.lm import convert_arpa

    table = {**LIBRISPEECH_LM_SHA256, **(checksums or {})}  # a checksum file of a mirror's corpus may lack the LMs
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        raise UserError(f"unknown LibriSpeech LM(s): {', '.join(unknown) or '(none given)'}; valid: "
                        f"{', '.join(LIBRISPEECH_LM_SHA256)}")
    folder = Path(out_dir) / "librispeech-lm"
    done = {}
    for name in dict.fromkeys(names):
        target = folder / f"{name}.arpa"
        if target.is_file():
            print(f"{target}: already there, skipping", file=sys.stderr)
        else:
            digest = table[name]
            archive = fetch(f"{mirror.rstrip('/')}/{name}.arpa.gz", folder / f"{name}.arpa.gz",
                            Checksum.of_hex(digest), progress=progress)
            convert_arpa(archive, target, progress=progress)
            if not keep_archives:
                archive.unlink()
        done[name] = target
    return done


def fetch(url: str, dest: str | os.PathLike, checksum: Checksum | None, progress: bool = True,
          timeout: float = TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming a part file left by an earlier run.

    ``dest`` itself only ever holds a complete, verified file; when it already exists it is
    re-verified and returned. Raises UserError on network errors (re-running resumes) and on a
    checksum mismatch (the part file is deleted first).
    """
    dest = Path(dest)
    if dest.is_file():
        _verify(dest, checksum, url, what="existing file")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _transfer(url, part, progress, timeout)
    except urllib.error.HTTPError as e:
        raise UserError(f"{url}: HTTP {e.code} {e.reason}; check the URL (or --mirror) and re-run "
                        f"(a partial download resumes)") from None
    except (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError, ssl.SSLError) as e:
        reason = getattr(e, "reason", None) or e.__class__.__name__
        have = part.stat().st_size if part.is_file() else 0
        raise UserError(f"{url}: download interrupted ({reason}) after {have} bytes; "
                        f"re-run the same command to resume it") from None
    _verify(part, checksum, url, what="download")
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, progress: bool, timeout: float) -> None:
    start = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "asr-download/1"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # nothing left to send: the part file is already whole
            return
        raise
    with resp:
        if start and resp.status != 206:  # the server ignored the Range header: start over
            start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        with open(part, "ab" if start else "wb") as f, \
                tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=part.name[: -len(".part")], disable=not progress, file=sys.stderr, mininterval=1) as bar:
            while block := resp.read(CHUNK):
                f.write(block)
                bar.update(len(block))
            f.flush()
            os.fsync(f.fileno())
    if total is not None and part.stat().st_size != total:
        raise ConnectionError(f"got {part.stat().st_size} of {total} bytes")


def _verify(path: Path, checksum: Checksum | None, url: str, what: str) -> None:
    if checksum is None:
        return
    got = checksum.of(path)
    if got != checksum.hexdigest.lower():
        path.unlink()
        raise UserError(f"{url}: {checksum.algorithm} of the {what} is {got}, expected {checksum.hexdigest}; "
                        f"the file was deleted: re-run to download it again, or try another mirror (--mirror)")


def extract_atomically(archive: str | os.PathLike, member: str, target: str | os.PathLike,
                       progress: bool = True) -> Path:
    """Unpack the folder ``member`` of a tar or zip archive to ``target``, all at once or not at all.

    The archive is unpacked into a temporary folder beside ``target``; a ``.complete`` marker
    is written into ``member`` and it is renamed to ``target``. Files beside ``member`` in the
    archive (LibriSpeech's README.TXT, SPEAKERS.TXT, ...) are moved beside ``target`` when
    absent there. Skips when ``target`` already has its marker.
    """
    archive, target = Path(archive), Path(target)
    if (target / COMPLETE_MARKER).is_file():
        return target
    if target.exists():
        raise UserError(f"{target} exists but was not completely extracted by this tool (no {COMPLETE_MARKER} "
                        f"marker); move or delete it and re-run")
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.extract-"
    for stale in target.parent.glob(prefix + "*"):  # left by a run that was killed mid-extraction
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as z:  # extract() drops absolute paths and ".." parts
                    for m in tqdm(z.infolist(), desc=f"extract {archive.name}", unit="file", disable=not progress,
                                  file=sys.stderr, mininterval=1):
                        z.extract(m, tmp)
            else:
                with tarfile.open(archive) as tar:
                    members = tar.getmembers()
                    for m in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress,
                                  file=sys.stderr, mininterval=1):
                        tar.extract(m, tmp, filter="data")  # "data": no absolute paths, links out, devices
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
            raise UserError(f"{archive}: cannot extract ({e}); delete it and re-run to download it again") from None
        src = tmp / member
        if not src.is_dir():
            raise UserError(f"{archive}: has no folder {member}/ (is it the right archive?)")
        (src / COMPLETE_MARKER).write_text(f"extracted from {archive.name}\n")
        for extra in src.parent.iterdir():
            if extra.is_file() and not (target.parent / extra.name).exists():
                os.replace(extra, target.parent / extra.name)
        os.replace(src, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return target
