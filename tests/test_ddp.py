"""DDP on CPU (gloo, 2 processes): disjoint data, identical weights, rank-0-only writes,
and the same loss curve as one process with the same global batch."""

import csv
import hashlib
import json
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from conftest import tiny_overrides


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, overrides, trace_dir, step_s=None):
    """One rank: trains with a hook that records, per step, the utterance ids and a weight checksum.

    ``step_s``: per rank, the seconds each optimizer step takes on a fake training clock (optim.time_budget_min).
    """
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import asr.train
    from asr.config import compose

    real_step = asr.train._step
    trace = []
    now = [0.0]
    if step_s:
        asr.train._Clock.now = staticmethod(lambda: now[0])

    def traced(model, opt, batches, *args, **kw):  # batches: those of one optimizer step
        now[0] += step_s[rank] if step_s else 0.0
        out = real_step(model, opt, batches, *args, **kw)
        digest = hashlib.sha1(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
        trace.append({"ids": [i for b in batches for i in b.ids], "weights": digest, "loss": out[0]})
        return out

    real_evaluate = asr.train.evaluate
    dev_ids = []

    def evaluated(model, ds, *args, **kw):
        dev_ids.append([u.id for u in ds.utts])
        return real_evaluate(model, ds, *args, **kw)

    asr.train._step = traced
    asr.train.evaluate = evaluated
    asr.train.train(compose(overrides))
    with open(os.path.join(trace_dir, f"rank{rank}.json"), "w") as f:
        json.dump(trace, f)
    with open(os.path.join(trace_dir, f"dev{rank}.json"), "w") as f:
        json.dump(dev_ids, f)


def run_ddp(world, overrides, trace_dir, step_s=None, timeout_s=600):
    """Train with ``world`` ranks; a test failure (not a hang) when they wait on each other past ``timeout_s``."""
    ctx = mp.spawn(_worker, args=(world, _free_port(), overrides, str(trace_dir), step_s), nprocs=world, join=False)
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the {world} ranks did not finish within {timeout_s} s: one waits on another")
    return [json.load(open(trace_dir / f"rank{r}.json")) for r in range(world)]


def dev_shares(world, trace_dir):
    """Per rank, the utterance ids of each dev pass."""
    return [json.load(open(trace_dir / f"dev{r}.json")) for r in range(world)]


@pytest.mark.slow
@pytest.mark.parametrize("features", [[], ["data.cache_features=false", "data.features_on=device",
                                          "optim.accum_grad=2"]],  # 2 batches per step: DDP's no_sync path too
                         ids=["cached-features", "features-on-device-accum-grad"])
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

    # the dev set scored in shares: disjoint halves, the whole set together, the same WER and loss
    (single_dev,), (dev0, dev1) = dev_shares(1, tmp_path / "t1"), dev_shares(2, tmp_path / "t2")
    assert len(dev0) == len(dev1) == len(single_dev) == 2  # one pass per epoch
    for a, b, single in zip(dev0, dev1, single_dev):
        assert not set(a) & set(b) and sorted(a + b) == sorted(single) and abs(len(a) - len(b)) <= 1
    dev_one = [(float(r["wer"]), float(r["loss"])) for r in csv.DictReader(open(one / "dev.csv"))]
    dev_two = [(float(r["wer"]), float(r["loss"])) for r in csv.DictReader(open(two / "dev.csv"))]
    assert len(dev_two) == 2 and [w for w, _ in dev_two] == pytest.approx([w for w, _ in dev_one], abs=0.02)
    assert [x for _, x in dev_two] == pytest.approx([x for _, x in dev_one], rel=2e-3)

    losses1 = [float(r["loss"]) for r in csv.DictReader(open(one / "train.csv"))]
    losses2 = [float(r["loss"]) for r in csv.DictReader(open(two / "train.csv"))]
    assert losses2 == pytest.approx(losses1, rel=2e-3)
    # only rank 0 writes: one set of files, no stray temporaries
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    a = torch.load(one / "last.pt", weights_only=True)["model"]
    b = torch.load(two / "last.pt", weights_only=True)["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-3), k


@pytest.mark.slow
def test_ddp_time_budget_follows_rank_0s_clock(digit_manifests, tmp_path):
    """optim.time_budget_min under DDP: rank 1's clock runs 3x as fast as rank 0's, yet both ranks take rank 0's
    learning rates and stop at the same step (a rank stopping alone would leave the other waiting for it)."""
    (tmp_path / "t").mkdir()
    overrides = tiny_overrides(tmp_path / "run", *digit_manifests, epochs=50) + [
        "specaug=none", "threads=1", "data.max_frames=3000", "optim.time_budget_min=0.2"]  # 12 s of rank 0's clock
    r0, r1 = run_ddp(2, overrides, tmp_path / "t", step_s=[1.0, 3.0], timeout_s=300)
    assert len(r0) == len(r1) == 12
    assert [a["weights"] for a in r0] == [b["weights"] for b in r1]
    assert len(list(csv.DictReader(open(tmp_path / "run" / "train.csv")))) == 12
