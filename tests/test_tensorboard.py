"""``tensorboard=true``: TensorBoard scalars with the figures of train.csv and dev.csv, no duplicates after a
resume, and a clear error before any work when the package is missing."""

import csv
import sys

import pytest

from asr.config import compose
from asr.errors import UserError
from asr.train import train
from conftest import tiny_overrides

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                        reason="tensorboard is not installed (pip install 'asr[tensorboard]')")


def _scalars(run):
    acc = event_accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tensorboard_scalars_match_the_csv_and_survive_a_resume(digit_manifests, tmp_path):
    run = tmp_path / "run"
    train(compose(tiny_overrides(run, *digit_manifests, epochs=1) + ["tensorboard=true"]))
    train(compose(tiny_overrides(run, *digit_manifests, epochs=2) + ["tensorboard=true"]))  # resumes for epoch 2
    tb, rows, dev = _scalars(run), _csv(run / "train.csv"), _csv(run / "dev.csv")
    assert {"train/loss", "train/lr", "train/grad_norm", "train/audio_s_per_s", "dev/loss", "dev/wer",
            "dev/cer"} <= set(tb)
    assert [s for s, _ in tb["train/loss"]] == [int(r["step"]) for r in rows]  # each step once, in order
    assert [v for _, v in tb["train/loss"]] == pytest.approx([float(r["loss"]) for r in rows], abs=1e-4)
    assert [v for _, v in tb["train/lr"]] == pytest.approx([float(r["lr"]) for r in rows], rel=1e-3)
    assert len(dev) == 2 and [s for s, _ in tb["dev/wer"]] == [int(r["step"]) for r in dev]
    assert [v for _, v in tb["dev/wer"]] == pytest.approx([float(r["wer"]) for r in dev], abs=1e-4)


def test_missing_tensorboard_fails_before_any_work(digit_manifests, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as when not installed
    with pytest.raises(UserError, match=r"tensorboard=true needs the tensorboard package: pip install"):
        train(compose(tiny_overrides(tmp_path / "run", *digit_manifests) + ["tensorboard=true"]))
    assert not (tmp_path / "run").exists()
