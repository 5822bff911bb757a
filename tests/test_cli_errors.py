"""A file the command cannot read or write, or a full disk, is one line and exit status 2, not a traceback; an
OSError that names no file is a bug and keeps its traceback."""

import errno

import pytest
import torch

import asr.cli
from asr.cli import main
from asr.errors import UserError, os_error_message, user_message


def test_output_under_a_file_is_one_line(tmp_path, capsys):
    text = tmp_path / "train.txt"
    text.write_text("one two three\n")
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    assert main(["lm", "build", "--text", str(text), "--order", "2", "--out", str(blocker / "lm.arpa")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(blocker) in err[0], err
    assert "Traceback" not in "".join(err)


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EACCES, "permissions"),
                                         (errno.ENOENT, "folder it goes in must exist")])
def test_os_errors_name_the_path_and_what_to_do(monkeypatch, capsys, code, words):
    def fail(args, extra):
        raise OSError(code, "the system's words", "/some/where/x.pt")

    monkeypatch.setattr(asr.cli, "build_parser", _parser_running(fail))
    assert main(["anything"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: /some/where/x.pt: the system's words; ") and words in err


def test_full_disk_without_a_file_name_is_still_one_line():
    assert os_error_message(OSError(errno.ENOSPC, "No space left on device")).startswith("disk: No space left")


def test_os_error_without_a_file_keeps_its_traceback(monkeypatch):
    def fail(args, extra):
        raise OSError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(asr.cli, "build_parser", _parser_running(fail))
    with pytest.raises(OSError, match="Broken pipe"):
        main(["anything"])


def _parser_running(func):
    """A parser whose only command, ``anything``, runs ``func``."""
    import argparse

    def build():
        p = argparse.ArgumentParser(prog="asr")
        sub = p.add_subparsers(dest="command", required=True)
        sub.add_parser("anything").set_defaults(func=func)
        return p

    return build


def test_options_are_not_abbreviated(tiny_model, tmp_path, capsys):
    """``--out`` is no option of transcribe; read as ``--out-dir`` it would write nothing there."""
    wav = _a_wav(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["transcribe", "--model", str(tiny_model), "--out", str(tmp_path / "o.txt"), str(wav)])
    assert e.value.code == 2 and "unrecognized arguments: --out" in capsys.readouterr().err


def test_out_dir_without_subtitles_is_refused(tiny_model, tmp_path, capsys):
    wav = _a_wav(tmp_path)
    assert main(["transcribe", "--model", str(tiny_model), "--out-dir", str(tmp_path / "o"), str(wav)]) == 2
    assert "--out-dir is for --format srt/vtt" in capsys.readouterr().err


def test_lm_order_zero_is_refused_not_defaulted(tmp_path, capsys):
    text = tmp_path / "train.txt"
    text.write_text("one two three\n")
    assert main(["lm", "build", "--text", str(text), "--order", "0", "--out", str(tmp_path / "lm.arpa")]) == 2
    assert "--order 0: use 2.." in capsys.readouterr().err
    assert not (tmp_path / "lm.arpa").exists()


def _a_wav(tmp_path):
    import numpy as np
    import soundfile as sf

    path = tmp_path / "a.wav"
    sf.write(path, (0.1 * np.sin(np.arange(8000) / 5)).astype("float32"), 16000)
    return path


class _Unreadable(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise UserError("x.flac: cannot read audio")


def test_user_error_from_a_loader_worker_is_its_own_line():
    """PyTorch re-raises a worker's exception with the worker's traceback in its message: the CLI shows the line."""
    loader = torch.utils.data.DataLoader(_Unreadable(), num_workers=1)
    with pytest.raises(UserError) as e:
        next(iter(loader))
    assert "Traceback" in str(e.value)
    assert user_message(e.value) == "x.flac: cannot read audio"
    assert user_message(UserError("plain")) == "plain"


def test_eval_report_that_cannot_be_written_fails_before_decoding(tiny_model, digit_manifests, tmp_path, capsys,
                                                                  monkeypatch):
    import asr.evaluate

    monkeypatch.setattr(asr.evaluate, "evaluate", lambda *a, **k: pytest.fail("decoded before the report failed"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["eval", "--model", str(tiny_model), "--manifest", str(digit_manifests[1]),
            "--report", str(blocker / "r.jsonl")]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: --report {blocker / 'r.jsonl'}: {blocker} is a file")


def test_train_run_dir_that_cannot_be_made_fails_before_features(digit_manifests, tmp_path, capsys, monkeypatch):
    import asr.train

    monkeypatch.setattr(asr.train, "_datasets", lambda *a, **k: pytest.fail("features computed first"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    train, dev = digit_manifests
    argv = ["train", f"run_dir={blocker / 'run'}", f"data.train_manifest={train}", f"data.dev_manifest={dev}"]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: run_dir={blocker / 'run'}: {blocker} is a file")
