"""Faults during training: non-finite losses are skipped without touching the model; a run of
them stops with a clear message; bad paths are caught before any work starts."""

import pytest
import torch

import asr.train
from asr.checkpoint import load_checkpoint
from asr.config import compose
from asr.errors import UserError
from asr.train import train
from conftest import tiny_overrides


def poison(monkeypatch, bad_calls):
    """Make ctc_loss return NaN on the given call numbers (1-based)."""
    real = torch.nn.functional.ctc_loss
    calls = {"n": 0}

    def ctc_loss(*args, **kw):
        calls["n"] += 1
        out = real(*args, **kw)
        return out * float("nan") if calls["n"] in bad_calls else out

    monkeypatch.setattr(torch.nn.functional, "ctc_loss", ctc_loss)


def test_nan_loss_batches_are_skipped_and_counted(digit_manifests, tmp_path, monkeypatch, capsys):
    snapshots = []
    real_step = asr.train._step

    def step(model, *args, **kw):
        before = [p.detach().clone() for p in model.parameters()]
        out = real_step(model, *args, **kw)
        snapshots.append((out[0], before, [p.detach().clone() for p in model.parameters()]))
        return out

    monkeypatch.setattr(asr.train, "_step", step)
    poison(monkeypatch, bad_calls={3, 4})
    train(compose(tiny_overrides(tmp_path / "run", *digit_manifests, epochs=1)))
    state = load_checkpoint(tmp_path / "run" / "last.pt")["train_state"]
    assert state["skipped"] == 2
    assert state["step"] == len(snapshots) - 2  # skipped batches are not optimizer steps
    for i, (loss, before, after) in enumerate(snapshots):
        unchanged = all(torch.equal(a, b) for a, b in zip(before, after))
        assert unchanged == (loss is None), i  # the model moves on good batches only
    assert "non-finite loss" in capsys.readouterr().err


def test_many_nan_losses_stop_the_run(digit_manifests, tmp_path, monkeypatch):
    poison(monkeypatch, bad_calls=set(range(1, 1000)))
    with pytest.raises(UserError, match="3 consecutive non-finite losses"):
        train(compose(tiny_overrides(tmp_path / "run", *digit_manifests, epochs=1) + ["optim.max_bad_steps=3"]))


def test_missing_manifest_named_before_work(tmp_path):
    with pytest.raises(UserError, match="data.train_manifest=.*no such manifest"):
        train(compose([f"run_dir={tmp_path}", f"data.train_manifest={tmp_path}/none.jsonl"]))
    assert not any(tmp_path.iterdir())
