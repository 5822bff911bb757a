"""DDP on CPU (gloo, 2 processes): disjoint data, identical weights, rank-0-only writes,
and the same loss curve as one process with the same global batch."""

import csv
import hashlib
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from conftest import tiny_overrides


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, overrides, trace_dir):
    """One rank: trains with a hook that records, per step, the utterance ids and a weight checksum."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import asr.train
    from asr.config import compose

    real_step = asr.train._step
    trace = []

    def traced(model, opt, batch, *args, **kw):
        out = real_step(model, opt, batch, *args, **kw)
        digest = hashlib.sha1(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
        trace.append({"ids": batch.ids, "weights": digest, "loss": out[0]})
        return out

    asr.train._step = traced
    asr.train.train(compose(overrides))
    with open(os.path.join(trace_dir, f"rank{rank}.json"), "w") as f:
        json.dump(trace, f)


def run_ddp(world, overrides, trace_dir):
    mp.spawn(_worker, args=(world, _free_port(), overrides, str(trace_dir)), nprocs=world, join=True)
    return [json.load(open(trace_dir / f"rank{r}.json")) for r in range(world)]


@pytest.mark.slow
@pytest.mark.parametrize("features", [[], ["data.cache_features=false", "data.features_on=device"]],
                         ids=["cached-features", "features-on-device"])
def test_ddp_two_ranks_match_one_process(digit_manifests, tmp_path, features):
    train_m, dev_m = digit_manifests
    common = ["specaug=none", "model.dropout=0.0", "threads=1", "data.max_frames=3000", *features]  # deterministic
    one, two = tmp_path / "one", tmp_path / "two"
    (tmp_path / "t1").mkdir()
    (tmp_path / "t2").mkdir()
    trace1 = run_ddp(1, tiny_overrides(one, train_m, dev_m, epochs=2) + common, tmp_path / "t1")[0]
    r0, r1 = run_ddp(2, tiny_overrides(two, train_m, dev_m, epochs=2) + common, tmp_path / "t2")

    assert len(r0) == len(r1) == len(trace1) > 5
    for a, b, single in zip(r0, r1, trace1):
        assert not set(a["ids"]) & set(b["ids"])  # disjoint data
        assert sorted(a["ids"] + b["ids"]) == sorted(single["ids"])  # together: the single-process batch
        assert a["weights"] == b["weights"]  # gradients agreed: identical weights after every step
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-9)  # the logged loss is the global one
        assert a["loss"] == pytest.approx(single["loss"], rel=2e-3)

    losses1 = [float(r["loss"]) for r in csv.DictReader(open(one / "train.csv"))]
    losses2 = [float(r["loss"]) for r in csv.DictReader(open(two / "train.csv"))]
    assert losses2 == pytest.approx(losses1, rel=2e-3)
    # only rank 0 writes: one set of files, no stray temporaries
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    a = torch.load(one / "last.pt", weights_only=True)["model"]
    b = torch.load(two / "last.pt", weights_only=True)["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-3), k
