"""Global feature statistics: per-bin mean/std of a training manifest, computed once (``asr stats``).

Training normalizes log-mels with these (``model.norm``). For corpora too large to cache
(``data.cache_features: false``), computing them at every training start would read all the
audio once more; ``data.stats`` names the file this module writes instead. The file is JSON
and records the feature settings it was computed with, so a mismatch is caught, not used.
"""

from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from asr.config import FeatureConfig
from asr.errors import UserError
from asr.features import LogMel, RunningStats
from asr.io import atomic_write_text
from asr.manifest import Utterance, read_manifest


class _Features(Dataset):
    def __init__(self, utts: list[Utterance], logmel: LogMel):
        self.utts, self.logmel = utts, logmel

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> torch.Tensor:
        from asr.audio import load_audio

        torch.set_num_threads(1)
        return self.logmel(load_audio(self.utts[i].audio, self.logmel.cfg.sample_rate))


def compute_stats(manifest: str | os.PathLike, features: FeatureConfig, max_utts: int = 0, seed: int = 0,
                  workers: int = 2, progress: bool = True) -> dict:
    """Per-bin mean and std over every frame of ``manifest`` (or of ``max_utts`` utterances drawn with ``seed``)."""
    utts = read_manifest(manifest)
    if not utts:
        raise UserError(f"{manifest}: no utterances")
    if max_utts and max_utts < len(utts):
        utts = random.Random(seed).sample(utts, max_utts)
    rs = RunningStats(features.n_mels)
    loader = DataLoader(_Features(utts, LogMel(features)), batch_size=None, num_workers=workers,
                        prefetch_factor=4 if workers else None)
    for feats in tqdm(loader, total=len(utts), desc="stats", unit="utt", file=sys.stderr, mininterval=2,
                      disable=not progress):
        rs.update(feats)
    mean, std = rs.mean_std()
    return {"manifest": str(manifest), "utterances": len(utts), "frames": rs.count, "features": asdict(features),
            "mean": mean.tolist(), "std": std.tolist()}


def save_stats(path: str | os.PathLike, stats: dict) -> Path:
    atomic_write_text(path, json.dumps(stats, indent=1) + "\n")
    return Path(path)


def load_stats(path: str | os.PathLike, features: FeatureConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) from a file of ``save_stats``; UserError when absent, unreadable or made with other features."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such statistics file (data.stats); make it with 'asr stats --manifest "
                        f"TRAIN.jsonl --out {path}', or set data.stats=null to compute them at the start of training")
    try:
        d = json.loads(path.read_text())
        mean, std, made_with = torch.tensor(d["mean"]), torch.tensor(d["std"]), d["features"]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a statistics file of 'asr stats' ({e})") from None
    if made_with != asdict(features) or mean.shape != (features.n_mels,) or std.shape != mean.shape:
        raise UserError(f"{path}: computed with other feature settings ({made_with}) than this run's "
                        f"({asdict(features)}); delete it and run 'asr stats' again")
    return mean, std
