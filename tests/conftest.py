"""Shared fixtures: paths to ../shared/data (skip clearly when absent) and a tiny trained model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ASR_SHARED_DATA", REPO.parent / "shared" / "data"))
LIBRISPEECH_SAMPLE = SHARED / "librispeech-sample"
FSDD = SHARED / "fsdd" / "recordings"
DIGITS = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (set ASR_SHARED_DATA or put shared/ beside the repo)")
    return path


@pytest.fixture
def one_thread():
    """One torch thread, as the CLI's default: on a busy 2-core machine two threads stall the LSTM."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def librispeech_sample() -> Path:
    return need(LIBRISPEECH_SAMPLE)


@pytest.fixture(scope="session")
def fsdd() -> Path:
    return need(FSDD)


def fsdd_manifest(path: Path, files: list[Path]) -> Path:
    """Single spoken digits as a manifest: {digit}_{speaker}_{n}.wav -> 'SEVEN'."""
    with open(path, "w") as f:
        for w in files:
            info = sf.info(str(w))
            text = DIGITS[int(w.name.split("_")[0])]
            f.write(json.dumps({"id": w.stem, "audio": str(w), "duration": round(info.frames / info.samplerate, 3),
                                "text": text}) + "\n")
    return path


@pytest.fixture(scope="session")
def digit_manifests(fsdd, tmp_path_factory) -> tuple[Path, Path]:
    """~300 training and 40 dev single-digit utterances (dev speaker unseen in training)."""
    d = tmp_path_factory.mktemp("fsdd")
    files = sorted(fsdd.glob("*.wav"))
    train = [f for f in files if "_george_" not in f.name and int(f.stem.split("_")[2]) < 6]
    dev = [f for f in files if "_george_" in f.name and int(f.stem.split("_")[2]) < 4]
    return fsdd_manifest(d / "train.jsonl", train), fsdd_manifest(d / "dev.jsonl", dev)


def tiny_overrides(run_dir: Path, train: Path, dev: Path, epochs: int = 2) -> list[str]:
    # model.utterance_cmn=false: the main job's per-utterance normalization would make a long file's windows (each
    # normalized by its own mean) differ from one pass over it, which the long-form tests compare exactly
    return [f"run_dir={run_dir}", f"data.train_manifest={train}", f"data.dev_manifest={dev}", "model=tiny",
            "model.utterance_cmn=false", f"optim.epochs={epochs}", "optim.warmup_steps=4", "optim.lr=5e-3",
            "data.max_frames=1500", "threads=2"]


@pytest.fixture(scope="session")
def tiny_model(digit_manifests, tmp_path_factory) -> Path:
    """A tiny model trained for 2 epochs on digits: good enough to exercise eval and transcribe."""
    from asr.config import compose
    from asr.train import train

    run = tmp_path_factory.mktemp("run") / "tiny"
    train(compose(tiny_overrides(run, *digit_manifests)))
    return run / "best.pt"
