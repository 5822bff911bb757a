"""A picture of one transcription: log-mel spectrogram, CTC posteriors and aligned words on one time axis.

``asr transcribe --model M --plot out.png FILE``. Matplotlib's object API with the Agg
canvas (no pyplot, no global backend switch), so it runs headless and in threads.
"""

from __future__ import annotations

import os

import librosa.display
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from asr.config import FeatureConfig
from asr.text import Tokenizer

BLANK_LABEL = "\u2205"  # the CTC blank's row label
SPACE_LABEL = "\u2423"  # the word separator's row label
MAX_ROWS = 40  # most token rows drawn (a BPE vocabulary has hundreds)


def plot_transcription(out: str | os.PathLike, feats: torch.Tensor, log_probs: torch.Tensor, words: list[dict],
                       tokenizer: Tokenizer, features: FeatureConfig, title: str = "", subsampling: int = 4) -> None:
    """(T, n_mels) log-mel, (T', V) log-probs and aligned words -> a 3-panel PNG at ``out``; ``subsampling``:
    the model's feature frames per output frame."""
    sample_rate = features.sample_rate
    hop = round(sample_rate * features.hop_ms / 1000)  # 160 samples per feature frame
    frame_s = hop * subsampling / sample_rate  # 0.04 s per output frame at 4
    duration = log_probs.shape[0] * frame_s
    fig = Figure(figsize=(min(24.0, max(10.0, 1.3 * duration)), 8), layout="constrained")
    FigureCanvasAgg(fig)
    spec_ax, post_ax, word_ax = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 3, 1]})

    img = librosa.display.specshow(feats.T.numpy(), sr=sample_rate, hop_length=hop, x_axis="time", y_axis="mel",
                                   fmin=features.f_min, fmax=features.f_max or sample_rate / 2, htk=False,
                                   cmap="magma", ax=spec_ax)  # (T, F) -> (F, T) rows are bins
    fig.colorbar(img, ax=spec_ax, label="ln mel power", pad=0.01)
    spec_ax.set(title=title or "log-mel spectrogram", xlabel="")

    post = log_probs.exp().T.numpy()  # (T', V) -> (V, T'): one row per token
    rows = np.arange(post.shape[0])
    if len(rows) > MAX_ROWS:  # BPE: only the tokens that peak highest, in vocabulary order
        rows = np.sort(np.argsort(-post.max(1), kind="stable")[:MAX_ROWS])
        rows = np.unique(np.r_[tokenizer.blank, rows])[:MAX_ROWS]
    im = post_ax.imshow(post[rows], aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
                        vmin=0, vmax=1, extent=(0, duration, -0.5, len(rows) - 0.5))
    fig.colorbar(im, ax=post_ax, label="posterior", pad=0.01)
    names = [tokenizer.tokens[i] for i in rows]
    labels = [BLANK_LABEL if i == tokenizer.blank else SPACE_LABEL if t == " " else t for i, t in zip(rows, names)]
    post_ax.set_yticks(range(len(labels)), labels, fontsize=7)
    shown = "" if len(rows) == post.shape[0] else f", the {len(rows)} of {post.shape[0]} tokens that peak highest"
    post_ax.set(title=f"CTC posteriors per output frame (blank at the bottom{shown})", xlabel="")

    word_ax.set_ylim(0, 1)
    word_ax.set_yticks([])
    for i, w in enumerate(words):
        word_ax.axvspan(w["start"], w["end"], ymin=0.1, ymax=0.9, color="tab:blue",
                        alpha=0.15 + 0.6 * float(np.clip(w["confidence"], 0, 1)), lw=0)
        word_ax.text((w["start"] + w["end"]) / 2, 0.7 if i % 2 else 0.3, w["word"], ha="center", va="center",
                     fontsize=9)
    if not words:
        word_ax.text(duration / 2, 0.5, "(no words recognized)", ha="center", va="center", color="gray")
    word_ax.set(xlim=(0, duration), xlabel="time (s)",
                title="aligned words (shade: confidence = mean posterior of the word's characters)")
    fig.savefig(out, dpi=110)
