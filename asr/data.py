"""Datasets, typed batches and duration-bucketed batch sampling."""

from __future__ import annotations

import random
import sys
from typing import NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from asr.audio import as_float, change_speed, load_audio, load_audio_pcm16
from asr.noise import NoiseMixer, Reverb
from asr.config import DataConfig
from asr.features import LogMel, RunningStats, zero_padding
from asr.manifest import Utterance
from asr.text import CharTokenizer, normalize_text


class Batch(NamedTuple):
    features: torch.Tensor  # (B, T, n_mels) log-mel, zero-padded
    feature_lengths: torch.Tensor  # (B,) valid frames
    targets: torch.Tensor  # (sum of target lengths,) token ids, concatenated
    target_lengths: torch.Tensor  # (B,) tokens per utterance
    ids: list[str]  # utterance ids
    texts: list[str]  # normalized reference texts

    def to(self, device) -> "Batch":
        nb = device.type == "cuda"
        return self._replace(features=self.features.to(device, non_blocking=nb),
                             targets=self.targets.to(device, non_blocking=nb))


class WaveBatch(NamedTuple):
    """A batch before its log-mels: padded waveforms, for feature extraction on the training device."""

    waves: torch.Tensor  # (B, S) samples at the feature sample rate, zero-padded: int16 (16-bit PCM files) or float32
    wave_lengths: torch.Tensor  # (B,) valid samples
    targets: torch.Tensor  # (sum of target lengths,) token ids, concatenated
    target_lengths: torch.Tensor  # (B,) tokens per utterance
    ids: list[str]  # utterance ids
    texts: list[str]  # normalized reference texts

    def featurize(self, logmel: LogMel) -> Batch:
        """The Batch that ``collate`` makes from per-utterance features, computed on ``logmel``'s device.

        Padding is zeros and LogMel pads each utterance with zeros too, so every valid frame is the
        utterance's own; frames past each length are set to zero as ``collate`` leaves them.
        """
        device = next(logmel.buffers()).device  # the mel filterbank's
        nb = device.type == "cuda"
        waves = as_float(self.waves.to(device, non_blocking=nb))  # int16 travels, the GPU scales it
        feats = logmel(waves)  # (B, S) -> (B, T, n_mels), T = 1 + S // hop
        lengths = logmel.num_frames(self.wave_lengths)  # (B,) frames
        feats = zero_padding(feats, lengths.to(device), time_dim=1)
        return Batch(feats, lengths, self.targets, self.target_lengths, self.ids, self.texts)


class UtteranceDataset(Dataset):
    """Manifest entries -> (id, log-mel (T, n_mels), token ids, normalized text).

    With ``cache=True`` features are computed once (``fill_cache``) and kept in memory.
    With ``waveforms=True`` (and no cache) items carry the waveform (samples,) instead of
    features, for ``collate_waves`` and feature extraction on the training device.
    An item's key is an index, or (index, speed factor[, noise seed]) from a sampler with speed perturbation,
    noise or reverberation (``self.rir``, a Reverb, then ``self.noise``, a NoiseMixer, draw from the seed whether,
    which and how loud).
    """

    def __init__(self, utts: list[Utterance], logmel: LogMel, tokenizer: CharTokenizer):
        self.utts = utts
        self.logmel = logmel
        self.tokenizer = tokenizer
        self.texts = [normalize_text(u.text).text for u in utts]
        self.cache: list[torch.Tensor] | None = None
        self.waveforms = False
        self.noise: NoiseMixer | None = None
        self.rir: Reverb | None = None

    def __len__(self) -> int:
        return len(self.utts)

    def num_frames(self, i: int, speed: float = 1.0) -> int:
        """Feature frames of utterance ``i``, played ``speed`` times faster (``change_speed``)."""
        return self.logmel.num_frames(round(self.utts[i].duration / speed * self.logmel.cfg.sample_rate))

    def features(self, i: int, speed: float = 1.0, noise_seed: int | None = None) -> torch.Tensor:
        if self.cache is not None and speed == 1.0 and noise_seed is None:
            return self.cache[i]
        return self.logmel(self._augmented(load_audio(self.utts[i].audio, self.logmel.cfg.sample_rate), speed,
                                           noise_seed))

    def _augmented(self, wave: torch.Tensor, speed: float, noise_seed: int | None) -> torch.Tensor:
        wave = change_speed(wave, speed)
        if noise_seed is not None:
            if self.rir is not None:  # the room first, then noise that is not in the room
                wave = self.rir(wave, noise_seed)
            if self.noise is not None:
                wave = self.noise(wave, noise_seed)
        return wave

    def __getitem__(self, key: int | tuple):
        i, speed, noise_seed = (*key, None)[:3] if isinstance(key, tuple) else (key, 1.0, None)
        text = self.texts[i]
        if self.waveforms and self.cache is None:
            x = load_audio_pcm16(self.utts[i].audio, self.logmel.cfg.sample_rate)  # (samples,) int16 or float32
            x = self._augmented(x, speed, noise_seed)
        else:
            x = self.features(i, speed, noise_seed)  # (T, n_mels)
        return self.utts[i].id, x, torch.tensor(self.tokenizer.encode(text)), text

    def fill_cache(self, workers: int = 2, desc: str = "features") -> None:
        """Compute every utterance's features once, in ``workers`` processes, as float16."""
        feats: list[torch.Tensor] = [None] * len(self)  # type: ignore[list-item]
        loader = DataLoader(_FeatureJob(self), batch_size=None, num_workers=workers, collate_fn=_as_is,
                            prefetch_factor=8 if workers else None)
        for i, f in tqdm(loader, total=len(self), desc=desc, unit="utt", file=sys.stderr, mininterval=1):
            feats[i] = torch.from_numpy(f)
        self.cache = feats

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-bin mean and std over all frames (needs the cache for speed, works without)."""
        rs = RunningStats(self.logmel.cfg.n_mels)
        for i in range(len(self)):
            rs.update(self.features(i))
        return rs.mean_std()


def _as_is(item):
    return item  # what a worker sends is what arrives (the default collate would make numpy arrays tensors)


class _FeatureJob(Dataset):
    def __init__(self, ds: UtteranceDataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        torch.set_num_threads(1)
        # as a numpy array: pickled through the worker's pipe. A tensor would travel as a shared-memory file
        # descriptor, one socket connection each: 4 ms per utterance, 31 s for the main job's 7,672 (measured)
        return i, self.ds.features(i).half().numpy()


def collate(items) -> Batch:
    """Items with features -> a Batch, zero-padded, float32 (the cache holds float16)."""
    ids, feats, targets, texts = zip(*items)
    return Batch(*_padded(feats), torch.cat(targets), torch.tensor([len(t) for t in targets]), list(ids), list(texts))


def collate_waves(items) -> WaveBatch:
    """Items with waveforms (``UtteranceDataset.waveforms``) -> a WaveBatch, zero-padded.

    int16 when every waveform is (16-bit PCM files), else float32 with int16 ones scaled as load_audio does.
    """
    ids, waves, targets, texts = zip(*items)
    if any(w.dtype != torch.int16 for w in waves):
        waves = [as_float(w) for w in waves]
    return WaveBatch(*_padded(waves, waves[0].dtype), torch.cat(targets), torch.tensor([len(t) for t in targets]),
                     list(ids), list(texts))


def _padded(seqs, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_i, ...) tensors -> (B, max L_i, ...) zero-padded ``dtype``, and (B,) lengths L_i."""
    lengths = torch.tensor([x.shape[0] for x in seqs])
    padded = seqs[0].new_zeros((len(seqs), int(lengths.max()), *seqs[0].shape[1:]), dtype=dtype)
    for i, x in enumerate(seqs):
        padded[i, : x.shape[0]] = x
    return padded, lengths


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar duration, capped by total padded frames, shuffled per epoch from the seed.

    ``max_frames`` caps the global batch of one optimizer step. Under DDP every rank
    builds the same shuffled list of global batches and takes every ``world_size``-th
    utterance of each (``batch[rank::world_size]``): ranks see disjoint data, and the
    global batch is the one a single process would use, so the loss curves agree.
    With ``speeds`` (speed perturbation) each utterance of an epoch comes as (index, factor),
    the factor drawn from the seed and the epoch: the same on every rank and after a resume.
    With ``noise`` it comes as (index, factor, noise seed), the seed drawn the same way.
    ``multiple`` and ``max_utts`` shape each rank's share: a multiple of ``multiple`` utterances (but for a
    batch that fits fewer, and the longest utterances' leftover), at most ``max_utts``. On a GPU, 8 and 128
    let cuDNN run each LSTM layer and direction as one persistent kernel (asr/model.py, ``rnn_impl=auto``).
    """

    def __init__(self, num_frames: list[int], max_frames: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1, sortagrad: bool = False, speeds: list[float] | None = None,
                 noise: bool = False, multiple: int = 1, max_utts: int = 0):
        self.seed, self.shuffle, self.rank, self.world_size = seed, shuffle, rank, world_size
        self.sortagrad = sortagrad
        self.speeds = list(speeds or [])
        self.noise = noise
        self.epoch = 0
        # per rank: each rank's share a multiple of ``multiple`` utterances, at most ``max_utts`` (0: no cap)
        multiple *= world_size if multiple > 1 else 1
        cap = max_utts * world_size or len(num_frames) + 1
        order = sorted(range(len(num_frames)), key=lambda i: num_frames[i])
        batches: list[list[int]] = []

        def close(batch: list[int]) -> list[int]:
            """Close a full batch with a multiple of ``multiple`` utterances (all, when fewer); the longest few
            left over are returned to open the next one."""
            keep = len(batch) - len(batch) % multiple or len(batch)
            batches.append(batch[:keep])
            return batch[keep:]

        batch: list[int] = []
        for i in order:
            longest = num_frames[i]  # sorted ascending: the newest utterance is the longest
            while batch and (longest * (len(batch) + 1) > max_frames or len(batch) >= cap):
                batch = close(batch)
            batch.append(i)
        while batch:  # the last: a multiple, then the rest
            batch = close(batch)
        self.batches = [b for b in batches if len(b) >= world_size]  # every rank needs an utterance
        if len(self.batches) < len(batches):
            print(f"warning: {len(batches) - len(self.batches)} batch(es) smaller than the {world_size} ranks "
                  f"were dropped; raise data.max_frames", file=sys.stderr)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_batches(self) -> list[list]:
        """This rank's share of each global batch, in this epoch's order: indices, or (index, speed factor)."""
        batches = list(self.batches)
        if self.shuffle and not (self.sortagrad and self.epoch == 0):  # SortaGrad: shortest first in epoch 1
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(batches)
        if self.speeds or self.noise:
            speed = random.Random(f"speed-{self.seed}-{self.epoch}")
            noise = random.Random(f"noise-{self.seed}-{self.epoch}")
            batches = [[(i, speed.choice(self.speeds) if self.speeds else 1.0)
                        + ((noise.getrandbits(32),) if self.noise else ()) for i in b] for b in batches]
        return [b[self.rank :: self.world_size] for b in batches]

    def __iter__(self):
        return iter(self.epoch_batches())

    def __len__(self) -> int:
        return len(self.batches)


def filter_by_duration(utts: list[Utterance], cfg: DataConfig, name: str) -> list[Utterance]:
    """Drop (and report) utterances outside [min_duration, max_duration]."""
    keep = [u for u in utts if cfg.min_duration <= u.duration <= cfg.max_duration]
    if len(keep) < len(utts):
        dropped = [u for u in utts if not cfg.min_duration <= u.duration <= cfg.max_duration][:5]
        print(f"warning: {name}: skipped {len(utts) - len(keep)} utterance(s) outside "
              f"{cfg.min_duration}-{cfg.max_duration} s, e.g. "
              + ", ".join(f"{u.id} ({u.duration:.1f} s)" for u in dropped), file=sys.stderr)
    return keep
