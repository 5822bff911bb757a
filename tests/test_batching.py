"""Batches in multiples of N utterances, at most M (data.batch_multiple, data.max_utts): what lets cuDNN run its
persistent LSTM kernel on a GPU. The CPU-side rules: the sampler's batches, and when a loss scale is needed."""

import random

import pytest
import torch

from asr.data import BucketBatchSampler
from asr.precision import needs_loss_scale


def _frames(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(100, 3500) for _ in range(n)]


@pytest.mark.parametrize("multiple, max_utts, world", [(8, 128, 1), (8, 0, 1), (4, 16, 2), (1, 5, 1)])
def test_batches_come_in_multiples_under_both_caps(multiple, max_utts, world):
    frames = _frames(3000)
    cap = 100_000
    sampler = BucketBatchSampler(frames, cap, seed=1, multiple=multiple, max_utts=max_utts, world_size=world)
    batches = sampler.batches
    assert sorted(i for b in batches for i in b) == list(range(len(frames)))  # every utterance once
    assert all(max(frames[i] for i in b) * len(b) <= cap for b in batches)  # padded frames under the cap
    step = multiple * world if multiple > 1 else 1
    off = [b for b in batches if len(b) % step]
    assert len(off) <= 1 and (not off or off[0] is batches[-1])  # only the epoch's last may be off the multiple
    if max_utts:
        assert max(len(b) for b in batches) <= max_utts * world
        assert any(len(b) == max_utts * world for b in batches)  # the cap binds for short utterances
    # each rank's share is then a multiple too
    for rank in range(world):
        shares = BucketBatchSampler(frames, cap, seed=1, multiple=multiple, max_utts=max_utts, rank=rank,
                                    world_size=world).epoch_batches()
        assert sum(len(s) % (multiple if multiple > 1 else 1) != 0 for s in shares) <= 1


def test_default_batches_are_the_frame_cap_alone():
    """multiple 1, no utterance cap: each batch is as large as the frame cap allows (the batches of before)."""
    frames = _frames(500, seed=2)
    batches = BucketBatchSampler(frames, 20_000, shuffle=False).batches
    for b, nxt in zip(batches, batches[1:]):
        assert max(frames[i] for i in b + nxt[:1]) * (len(b) + 1) > 20_000  # the next one would not have fit


def test_rounding_down_keeps_the_longest_for_the_next_batch():
    frames = list(range(100, 120))  # sorted already; 20 utterances
    batches = BucketBatchSampler(frames, 119 * 11, shuffle=False, multiple=4).batches
    assert [len(b) for b in batches] == [8, 8, 4]  # 11 fit; 8 kept, 3 carried over
    assert batches[0] == list(range(8)) and batches[1] == list(range(8, 16))


def test_a_loss_scale_whenever_the_lstm_runs_in_fp16():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert needs_loss_scale(torch.float16, cuda) and needs_loss_scale(torch.float16, cpu)
    assert needs_loss_scale(torch.bfloat16, cuda)  # cuDNN's LSTM casts to half under any autocast
    assert not needs_loss_scale(torch.bfloat16, cpu) and not needs_loss_scale(None, cuda)


def test_auto_takes_flip_on_cpu_whatever_the_batch():
    from asr.checkpoint import build_model
    from asr.config import compose, to_dataclass
    from asr.text import CharTokenizer

    cfg = to_dataclass(compose(["model=tiny", "model.hidden=128", "specaug=none"]))
    model = build_model(cfg, CharTokenizer()).eval()
    feats = torch.randn(8, 120, cfg.features.n_mels)
    lengths = torch.tensor([120, 90, 80, 70, 60, 50, 40, 30])
    calls = []
    model._flip_lstm = lambda x, n: calls.append(x.shape[0]) or torch.zeros(x.shape[0], x.shape[1], 256)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(feats, lengths)
    assert calls == [8]
