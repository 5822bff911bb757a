"""Checkpoints: atomic writes, safe loads (``weights_only=True``: no code runs from a file).

A checkpoint holds only tensors and plain Python values: the model weights, the
configuration (as a dict), the tokenizer, and for training state the optimizer,
step counters and RNG state.

``keep_epoch_checkpoint`` keeps the weights of the last N epochs (``epoch-K.pt``) and
``average_checkpoints`` averages them into one model (``asr average``).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from asr.config import FeatureConfig, ModelConfig, SpecAugmentConfig, TrainConfig
from asr.errors import UserError
from asr.io import atomic_write_bytes
from asr.model import BiLSTMCTC
from asr.text import Tokenizer, tokenizer_from_dict

FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Serialize to memory first, then write atomically (temp file, fsync, rename)."""
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location="cpu", mmap: bool = False) -> dict:
    """A checkpoint's contents (UserError when missing, unreadable or not ours); ``mmap``: tensors are read from
    the file only when used (for a look at its config or tokenizer)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint; train one with 'asr train' (it writes RUN_DIR/best.pt)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
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


def model_state(model: torch.nn.Module, cfg: TrainConfig, tokenizer: Tokenizer) -> dict:
    """The part of a checkpoint inference needs."""
    return {"model": model.state_dict(), "config": asdict(cfg), "tokenizer": tokenizer.to_dict()}


def build_model(cfg: TrainConfig, tokenizer: Tokenizer) -> BiLSTMCTC:
    return BiLSTMCTC(cfg.model, cfg.features, cfg.specaug, len(tokenizer))


def load_model(path: str | os.PathLike, device="cpu") -> tuple[BiLSTMCTC, Tokenizer, TrainConfig]:
    """A trained model in eval mode, its tokenizer and its training config."""
    return model_from_checkpoint(load_checkpoint(path), device)


def model_from_checkpoint(ckpt: dict, device="cpu") -> tuple[BiLSTMCTC, Tokenizer, TrainConfig]:
    """``load_model`` for a checkpoint already read with ``load_checkpoint``."""
    c = ckpt["config"]
    cfg = TrainConfig(
        features=FeatureConfig(**c["features"]), model=ModelConfig(**c["model"]),
        specaug=SpecAugmentConfig(**c["specaug"]),
    )
    tokenizer = tokenizer_from_dict(ckpt["tokenizer"])
    model = build_model(cfg, tokenizer)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), tokenizer, cfg


_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")


def epoch_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """``RUN_DIR/epoch-K.pt`` files, oldest epoch first."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("epoch-*.pt") if (m := _EPOCH_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def keep_epoch_checkpoint(run_dir: str | os.PathLike, epoch: int, state: dict, keep: int) -> Path:
    """Write ``epoch-{epoch}.pt`` (``state``: weights, config, tokenizer) and delete those older than ``keep`` epochs.

    Weights only, no optimizer state (twice the weights' size for AdamW): these files are
    for averaging and evaluation; ``last.pt`` is the one to resume from.
    """
    path = Path(run_dir) / f"epoch-{epoch}.pt"
    save_checkpoint(path, {**state, "epoch": epoch})
    for old in epoch_checkpoints(run_dir):
        if int(_EPOCH_FILE.match(old.name).group(1)) <= epoch - keep:
            old.unlink(missing_ok=True)
    return path


def average_checkpoints(paths: list[str | os.PathLike]) -> dict:
    """One checkpoint whose floating-point weights are the mean of ``paths``' (integer buffers from the last).

    Config and tokenizer come from the last checkpoint; all must hold the same tensors with the
    same shapes and the same tokenizer. The result loads with ``load_model`` like any checkpoint.
    """
    if not paths:
        raise UserError("no checkpoints to average")
    ckpts = [load_checkpoint(p) for p in paths]
    last = ckpts[-1]
    ref = last["model"]
    total = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in ref.items() if v.is_floating_point()}
    for path, ck in zip(paths, ckpts):
        m = ck["model"]
        if m.keys() != ref.keys() or any(m[k].shape != v.shape for k, v in ref.items()):
            raise UserError(f"{path}: its weights do not match {paths[-1]}'s (another model size?); "
                            f"average checkpoints of one run only")
        if _tokens(ck) != _tokens(last):
            raise UserError(f"{path}: another tokenizer than {paths[-1]}'s; average checkpoints of one run only")
        for k in total:
            total[k] += m[k].double()
    model = {k: (total[k] / len(ckpts)).to(v.dtype) if k in total else v.clone() for k, v in ref.items()}
    return {"model": model, "config": last["config"], "tokenizer": last["tokenizer"],
            "averaged_from": [str(p) for p in paths]}


def _tokens(ckpt: dict) -> list[str]:
    return list(ckpt["tokenizer"].get("tokens", []))


def last_epoch_checkpoints(run_dir: str | os.PathLike, last: int) -> list[Path]:
    """The ``last`` newest ``epoch-K.pt`` of a run; UserError when there are fewer."""
    found = epoch_checkpoints(run_dir)
    if last < 1:
        raise UserError(f"--last {last}: average at least 1 checkpoint")
    if len(found) < last:
        have = ", ".join(p.name for p in found) or "none"
        raise UserError(f"{run_dir}: {len(found)} epoch checkpoint(s) ({have}), --last {last} wanted; "
                        f"train with keep_epochs={last} or more")
    return found[-last:]


def write_average(paths: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Average ``paths`` into the checkpoint ``out`` (written atomically)."""
    save_checkpoint(out, average_checkpoints(paths))
    print(f"{out}: average of {len(paths)} checkpoint(s): {', '.join(Path(p).name for p in paths)}", file=sys.stderr)
    return Path(out)


def describe(path: str | os.PathLike) -> dict:
    """What a checkpoint holds, for ``asr info``: model, features, tokens, and how far its training got."""
    ckpt = load_checkpoint(path)
    if "model" not in ckpt or "config" not in ckpt:
        raise UserError(f"{path}: not a checkpoint of asr train (no model weights or config in it)")
    c = ckpt["config"]
    m, f = c["model"], c["features"]
    model = model_from_checkpoint(ckpt)[0]
    info = {
        "path": str(path), "size_mb": round(Path(path).stat().st_size / 2**20, 1),
        "parameters": model.num_params(),
        "model": (f"conv front, 2 layers of {m['conv_channels']} channels ({model.cfg.subsampling}x fewer frames: "
                  f"{model.cfg.subsampling * f['hop_ms']:g} ms) + {m['layers']}x{m['hidden']} BiLSTM"
                  f"{' (residual)' if model.cfg.residual else ''} + linear"),
        "outputs": model.out.out_features,
        "tokenizer": ckpt["tokenizer"].get("type", "char"),
        "features": (f"{f['n_mels']} log-mel bins{' up to %g Hz' % f['f_max'] if f.get('f_max') else ''}, "
                     f"{f['win_ms']:g} ms window, {f['hop_ms']:g} ms hop, {f['sample_rate']} Hz input"),
        "utterance_cmn": bool(m.get("utterance_cmn", False)),
        "train_manifest": c.get("data", {}).get("train_manifest"),
        "dev_manifest": c.get("data", {}).get("dev_manifest"),
    }
    state = ckpt.get("train_state")
    if state:
        info.update({"epochs_done": state["epoch"], "epochs_planned": c.get("optim", {}).get("epochs"),
                     "steps": state["step"], "best_dev_wer_percent": round(100 * state["best_wer"], 2)
                     if math.isfinite(state["best_wer"]) else None,
                     "skipped_batches": state.get("skipped", 0)})
        if "train_s" in state:  # checkpoints since optim.time_budget_min; with the budget, if one was set
            info["training_min"] = round(state["train_s"] / 60, 2)
            budget = c.get("optim", {}).get("time_budget_min")
            if budget:
                info["time_budget_min"] = budget
    if "epoch" in ckpt:  # epoch-K.pt of keep_epochs
        info["epoch"] = ckpt["epoch"]
    if "averaged_from" in ckpt:
        info["averaged_from"] = ckpt["averaged_from"]
    if c.get("init_from"):  # fine-tuned: the run started from this checkpoint's weights
        info["init_from"] = c["init_from"]
    return info
