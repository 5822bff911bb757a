"""Checkpoints: atomic writes, safe loads (``weights_only=True``: no code runs from a file).

A checkpoint holds only tensors and plain Python values: the model weights, the
configuration (as a dict), the tokenizer, and for training state the optimizer,
step counters and RNG state.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import asdict
from pathlib import Path

import torch

from asr.config import FeatureConfig, ModelConfig, SpecAugmentConfig, TrainConfig
from asr.errors import UserError
from asr.io import atomic_write_bytes
from asr.model import BiLSTMCTC
from asr.text import CharTokenizer

FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Serialize to memory first, then write atomically (temp file, fsync, rename)."""
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint; train one with 'asr train' (it writes RUN_DIR/best.pt)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "GLOBAL" in msg:  # the pickle names a Python object to import: code we refuse to run
            what = next((line.strip() for line in msg.splitlines() if "GLOBAL" in line), "")
            raise UserError(f"{path}: refused to load: the file holds more than weights ({what[:200]}); "
                            f"only load checkpoints written by 'asr train'") from None
        raise UserError(f"{path}: not a readable checkpoint (corrupt or not a torch file)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise UserError(f"{path}: not an asr checkpoint (no model weights or config in it)")
    return ckpt


def model_state(model: torch.nn.Module, cfg: TrainConfig, tokenizer: CharTokenizer) -> dict:
    """The part of a checkpoint inference needs."""
    return {"model": model.state_dict(), "config": asdict(cfg), "tokenizer": tokenizer.to_dict()}


def build_model(cfg: TrainConfig, tokenizer: CharTokenizer) -> BiLSTMCTC:
    return BiLSTMCTC(cfg.model, cfg.features, cfg.specaug, len(tokenizer))


def load_model(path: str | os.PathLike, device="cpu") -> tuple[BiLSTMCTC, CharTokenizer, TrainConfig]:
    """A trained model in eval mode, its tokenizer and its training config."""
    ckpt = load_checkpoint(path)
    c = ckpt["config"]
    cfg = TrainConfig(
        features=FeatureConfig(**c["features"]), model=ModelConfig(**c["model"]),
        specaug=SpecAugmentConfig(**c["specaug"]),
    )
    tokenizer = CharTokenizer.from_dict(ckpt["tokenizer"])
    model = build_model(cfg, tokenizer)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), tokenizer, cfg
