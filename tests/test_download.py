"""download_librispeech against a local HTTP server (127.0.0.1 only): checksum, resume, atomic extraction."""

import hashlib

import numpy as np
import pytest

from asr.cli import main
from asr.corpus.download import COMPLETE_MARKER, download_librispeech
from asr.corpus.librispeech import prepare_librispeech
from asr.errors import UserError
from asr.manifest import read_manifest
from http_mirror import Mirror, flac_bytes, tar_gz

SUBSET = "dev-clean"


def librispeech_tarball() -> bytes:
    """SUBSET.tar.gz as OpenSLR lays it out: LibriSpeech/README.TXT and LibriSpeech/SUBSET/SPK/CH/..."""
    rng = np.random.default_rng(0)
    members = {"LibriSpeech/README.TXT": b"a tiny stand-in\n"}
    lines = []
    for i, text in enumerate(["HELLO WORLD", "GOOD MORNING"]):
        wav = (0.1 * rng.standard_normal(8000)).astype(np.float32)
        members[f"LibriSpeech/{SUBSET}/11/22/11-22-000{i}.flac"] = flac_bytes(wav)
        lines.append(f"11-22-000{i} {text}")
    members[f"LibriSpeech/{SUBSET}/11/22/11-22.trans.txt"] = ("\n".join(lines) + "\n").encode()
    return tar_gz(members)


def Server(payload: bytes, cut_first_after: int | None = None, path: str = f"/{SUBSET}.tar.gz") -> Mirror:
    """The mirror serving one archive at ``path``."""
    return Mirror({path: payload}, cut_first_after=cut_first_after)


@pytest.fixture(scope="module")
def tarball() -> bytes:
    return librispeech_tarball()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_good_checksum_extracts_and_prepares(tarball, tmp_path):
    with Server(tarball) as srv:
        out = download_librispeech([SUBSET], tmp_path, mirror=srv.url, checksums={SUBSET: md5(tarball)},
                                   progress=False)
    target = tmp_path / "LibriSpeech" / SUBSET
    assert out == {SUBSET: target}
    assert (target / COMPLETE_MARKER).is_file() and (tmp_path / "LibriSpeech" / "README.TXT").is_file()
    assert not list(tmp_path.glob("*.tar.gz*")), "the archive is deleted after extraction"
    assert not list((tmp_path / "LibriSpeech").glob(".*extract*")), "no temporary folder left behind"
    utts = read_manifest(prepare_librispeech(tmp_path, [SUBSET], tmp_path / "m", progress=False)[SUBSET])
    assert [(u.id, u.text) for u in utts] == [("11-22-0000", "HELLO WORLD"), ("11-22-0001", "GOOD MORNING")]
    # A re-run skips the finished subset without touching the network.
    assert download_librispeech([SUBSET], tmp_path, mirror="http://127.0.0.1:9", checksums={SUBSET: "0"},
                                progress=False) == {SUBSET: target}


def test_bad_checksum_deletes_and_extracts_nothing(tarball, tmp_path):
    with Server(tarball) as srv, pytest.raises(UserError, match="md5 of the download is .*re-run"):
        download_librispeech([SUBSET], tmp_path, mirror=srv.url, checksums={SUBSET: "0" * 32}, progress=False)
    assert not (tmp_path / "LibriSpeech").exists()
    assert not list(tmp_path.iterdir()), "the bad part file is deleted"


def test_interrupted_transfer_resumes_with_range(tarball, tmp_path):
    cut = len(tarball) // 3
    with Server(tarball, cut_first_after=cut) as srv:
        with pytest.raises(UserError, match=r"download interrupted .*re-run the same command to resume"):
            download_librispeech([SUBSET], tmp_path, mirror=srv.url, checksums={SUBSET: md5(tarball)},
                                 progress=False)
        assert (tmp_path / f"{SUBSET}.tar.gz.part").stat().st_size == cut
        assert not (tmp_path / "LibriSpeech").exists()
        download_librispeech([SUBSET], tmp_path, mirror=srv.url, checksums={SUBSET: md5(tarball)}, progress=False)
    assert "Range" not in srv.requests[0]
    assert srv.requests[1]["Range"] == f"bytes={cut}-"
    assert (tmp_path / "LibriSpeech" / SUBSET / COMPLETE_MARKER).is_file()


def test_unknown_subset_lists_valid_ones(tmp_path):
    with pytest.raises(UserError, match=r"unknown LibriSpeech subset\(s\): dev-cleen; valid: dev-clean, .*-5"):
        download_librispeech(["dev-cleen"], tmp_path, progress=False)


def test_network_error_names_url_and_advice(tmp_path):
    with Server(b"") as srv:
        url = srv.url
    with pytest.raises(UserError, match=rf"{url}/{SUBSET}.tar.gz: .*re-run"):
        download_librispeech([SUBSET], tmp_path, mirror=url, checksums={SUBSET: "0"}, progress=False)


def test_mini_subsets_come_from_resource_31(tmp_path, monkeypatch):
    import asr.corpus.download as dl

    urls = []
    monkeypatch.setattr(dl, "fetch", lambda url, *a, **k: urls.append(url) or (_ for _ in ()).throw(UserError("x")))
    for subset in ("dev-clean-2", "dev-clean"):
        with pytest.raises(UserError):
            download_librispeech([subset], tmp_path, progress=False)
    assert urls == ["https://www.openslr.org/resources/31/dev-clean-2.tar.gz",
                    "https://www.openslr.org/resources/12/dev-clean.tar.gz"]


def test_cli(tarball, tmp_path, capsys, monkeypatch):
    import asr.corpus.download as dl

    monkeypatch.setitem(dl.LIBRISPEECH_MD5, SUBSET, md5(tarball))
    with Server(tarball) as srv:
        assert main(["download", "librispeech", "--subsets", SUBSET, "--out", str(tmp_path), "--mirror", srv.url]) == 0
    assert (tmp_path / "LibriSpeech" / SUBSET / "11" / "22" / "11-22.trans.txt").is_file()
    assert main(["download", "librispeech", "--subsets", "nope", "--out", str(tmp_path)]) == 2
    assert "valid: dev-clean" in capsys.readouterr().err


def _zip(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("corpus", ["musan", "rirs"])
def test_noise_corpora_download_verify_and_extract(corpus, tmp_path, capsys):
    """MUSAN (.tar.gz) and OpenSLR 28 (.zip): a good checksum extracts, a re-run skips, a bad one keeps nothing."""
    from asr.corpus.download import OPENSLR_CORPORA
    from asr.noise import NoiseMixer, Reverb

    spec = OPENSLR_CORPORA[corpus]
    wav = flac_bytes((0.1 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32))
    inner = "noise/free-sound/noise-0000.flac" if corpus == "musan" else "simulated_rirs/smallroom/Room001/r1.flac"
    members = {f"{spec.member}/README": b"stand-in\n", f"{spec.member}/{inner}": wav}
    payload = tar_gz(members) if corpus == "musan" else _zip(members)
    sums = tmp_path / "md5.txt"
    sums.write_text(f"{md5(payload)}  {spec.archive}\n")
    args = ["download", corpus, "--out", str(tmp_path / "out"), "--checksums", str(sums)]
    with Server(payload, path=f"/{spec.archive}") as srv:
        assert main(args + ["--mirror", srv.url]) == 0
        out, err = capsys.readouterr()
        target = tmp_path / "out" / spec.member
        assert out == f"{corpus}\t{target}\n" and ("data.noise=" if corpus == "musan" else "data.rir=") in err
        assert (target / COMPLETE_MARKER).is_file() and (target / inner).read_bytes() == wav
        assert not (tmp_path / "out" / spec.archive).exists()  # deleted after extraction
        assert main(args + ["--mirror", srv.url]) == 0 and len(srv.requests) == 1  # finished: skipped
    folder = target / inner.split("/")[0]
    (NoiseMixer if corpus == "musan" else Reverb)(folder)  # the folder the message names is usable as is
    sums.write_text(f"{'0' * 32}  {spec.archive}\n")
    with Server(payload, path=f"/{spec.archive}") as srv:
        assert main(["download", corpus, "--out", str(tmp_path / "bad"), "--checksums", str(sums),
                     "--mirror", srv.url]) == 2
    assert "md5 of the download is" in capsys.readouterr().err
    assert not (tmp_path / "bad" / spec.member).exists() and not list((tmp_path / "bad").glob("*.part"))


def test_zip_members_cannot_escape_the_target(tmp_path):
    """A zip entry named ../x or /x is unpacked inside the temporary folder (zipfile drops those parts), so, as a
    file beside the member, it can only end up beside the target (as LibriSpeech's README.TXT does), never above."""
    from asr.corpus.download import extract_atomically

    archive = tmp_path / "a" / "evil.zip"
    archive.parent.mkdir()
    archive.write_bytes(_zip({"RIRS_NOISES/ok.txt": b"ok", "../../escaped.txt": b"no", "/abs.txt": b"no"}))
    target = extract_atomically(archive, "RIRS_NOISES", tmp_path / "out" / "RIRS_NOISES", progress=False)
    assert (target / "ok.txt").read_bytes() == b"ok"
    out = tmp_path / "out"
    for name in ("escaped.txt", "abs.txt"):
        assert [p.parent for p in tmp_path.rglob(name)] == [out]
        assert not (tmp_path.parent / name).exists() and not (tmp_path / name).exists()
