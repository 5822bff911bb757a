"""Checkpoints: atomic writes that survive a crash mid-write, and loads that never run code."""

import os
import subprocess
import sys

import pytest
import torch

from asr.checkpoint import load_checkpoint, save_checkpoint
from asr.errors import UserError


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def test_malicious_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "payload": Exploit()}, path)
    with pytest.raises(UserError, match="refused to load"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned-by-checkpoint").exists()


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(UserError, match="not an asr checkpoint"):
        load_checkpoint(other)


def test_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(4.0)}, "config": {"a": 1}, "train_state": {"step": 3}}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(back["model"]["w"], state["model"]["w"]) and back["train_state"] == {"step": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind


KILL_DURING_WRITE = r"""
import os, sys, signal, torch
import asr.io
from asr.checkpoint import save_checkpoint
real_fsync = os.fsync
def die(fd):  # the temporary file is fully written but not yet renamed: the worst moment
    os.kill(os.getpid(), signal.SIGKILL)
os.fsync = die
save_checkpoint(sys.argv[1], {"model": {"w": torch.ones(1000)}, "config": {"v": 2}})
"""


def test_kill9_during_write_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.zeros(1000)}, "config": {"v": 1}})
    p = subprocess.run([sys.executable, "-c", KILL_DURING_WRITE, str(path)], capture_output=True)
    assert p.returncode == -9
    back = load_checkpoint(path)
    assert back["config"] == {"v": 1} and torch.equal(back["model"]["w"], torch.zeros(1000))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (needs root, as in CI); skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root) to fill a disk for real")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_is_a_clear_error_and_keeps_the_previous_file(tiny_disk):
    path = tiny_disk / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.zeros(1000)}, "config": {"v": 1}})
    with pytest.raises(UserError, match="disk is full.*previous version of the file is intact"):
        save_checkpoint(path, {"model": {"w": torch.ones(200_000)}, "config": {"v": 2}})  # 800 kB > 256 KiB
    assert load_checkpoint(path)["config"] == {"v": 1}
    assert [p.name for p in tiny_disk.iterdir()] == ["last.pt"]  # the partial temporary was removed


def test_info_describes_a_trained_checkpoint(tiny_model, tmp_path, capsys):
    """asr info: the parameter count of the model it loads, epochs and steps done, the best dev WER of dev.csv."""
    import csv
    import json

    from asr.checkpoint import load_model, write_average
    from asr.cli import main

    assert main(["info", "--model", str(tiny_model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    dev = list(csv.DictReader(open(tiny_model.parent / "dev.csv")))
    assert info["parameters"] == load_model(tiny_model)[0].num_params()
    wers = [float(r["wer"]) for r in dev]
    assert info["epochs_planned"] == len(dev) == 2
    assert info["epochs_done"] == 1 + wers.index(min(wers))  # best.pt is last.pt of its best epoch
    assert info["best_dev_wer_percent"] == pytest.approx(100 * min(wers), abs=0.01)
    train_s = load_checkpoint(tiny_model)["train_state"]["train_s"]  # the loop's wall time when best.pt was saved
    assert train_s > 0 and info["training_min"] == round(train_s / 60, 2)
    assert "time_budget_min" not in info  # trained for epochs, not for a time budget
    assert main(["info", "--model", str(tiny_model.parent / "last.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs_done"] == 2
    assert "x32 BiLSTM" in info["model"] and "(4x fewer frames: 40 ms)" in info["model"]
    assert info["outputs"] == 29 and info["tokenizer"] == "char"
    avg = write_average([tiny_model, tiny_model.parent / "last.pt"], tmp_path / "avg.pt")
    assert main(["info", "--model", str(avg)]) == 0
    out = capsys.readouterr().out
    assert "averaged_from" in out and "last.pt" in out and "epochs_done" not in out  # weights only
    assert main(["info", "--model", str(tmp_path / "missing.pt")]) == 2
