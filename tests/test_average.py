"""Checkpoint averaging: float tensors averaged, integer buffers from the last, errors named."""

import pytest
import torch

from asr.checkpoint import average_checkpoints, epoch_checkpoints, last_epoch_checkpoints, save_checkpoint
from asr.cli import main
from asr.errors import UserError

TOKENIZER = {"type": "char", "tokens": ["<blank>", " ", "a"]}


def ckpt(path, w: float, steps: int, shape=(2, 3)):
    save_checkpoint(path, {"model": {"w": torch.full(shape, w), "h": torch.full((2,), w, dtype=torch.bfloat16),
                                     "steps": torch.tensor(steps)},
                           "config": {"seed": steps}, "tokenizer": TOKENIZER, "optimizer": {"state": {}}})
    return path


def test_floats_averaged_integers_from_the_last(tmp_path):
    paths = [ckpt(tmp_path / f"epoch-{i}.pt", w, i) for i, w in [(1, 1.0), (2, 2.0), (3, 6.0)]]
    avg = average_checkpoints(paths)
    assert torch.equal(avg["model"]["w"], torch.full((2, 3), 3.0))
    assert avg["model"]["h"].dtype == torch.bfloat16 and torch.equal(avg["model"]["h"].float(), torch.full((2,), 3.0))
    assert avg["model"]["steps"].item() == 3 and avg["config"] == {"seed": 3}
    assert "optimizer" not in avg and avg["averaged_from"] == [str(p) for p in paths]


def test_cli_last_n_of_a_run(tmp_path):
    for i in [2, 10, 9]:  # numeric order, not file-name order
        ckpt(tmp_path / f"epoch-{i}.pt", float(i), i)
    ckpt(tmp_path / "epoch-x.pt", 0.0, 0)  # not an epoch checkpoint
    assert [p.name for p in epoch_checkpoints(tmp_path)] == ["epoch-2.pt", "epoch-9.pt", "epoch-10.pt"]
    assert main(["average", "--run-dir", str(tmp_path), "--last", "2"]) == 0
    avg = torch.load(tmp_path / "avg.pt", weights_only=True)
    assert torch.equal(avg["model"]["w"], torch.full((2, 3), 9.5)) and avg["model"]["steps"].item() == 10
    out = tmp_path / "two.pt"
    assert main(["average", "--checkpoints", str(tmp_path / "epoch-2.pt"), str(tmp_path / "epoch-10.pt"),
                 "--out", str(out)]) == 0
    assert torch.equal(torch.load(out, weights_only=True)["model"]["w"], torch.full((2, 3), 6.0))


def test_errors_are_named(tmp_path, capsys):
    ckpt(tmp_path / "epoch-1.pt", 1.0, 1)
    with pytest.raises(UserError, match="1 epoch checkpoint.*--last 3 wanted.*keep_epochs=3"):
        last_epoch_checkpoints(tmp_path, 3)
    assert main(["average", "--run-dir", str(tmp_path)]) == 2
    assert "--last N" in capsys.readouterr().err
    ckpt(tmp_path / "other.pt", 1.0, 1, shape=(4,))
    with pytest.raises(UserError, match="do not match"):
        average_checkpoints([tmp_path / "epoch-1.pt", tmp_path / "other.pt"])
