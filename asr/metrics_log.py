"""Per-step training metrics (CSV, and TensorBoard when asked) and the loss / dev-WER plot (PNG)."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from asr.errors import UserError
from asr.io import atomic_write_bytes

TRAIN_FIELDS = ["step", "epoch", "loss", "lr", "grad_norm", "audio_s_per_s", "time"]
DEV_FIELDS = ["step", "epoch", "loss", "wer", "cer", "time"]


class MetricsLog:
    """``train.csv`` (a row per step), ``dev.csv`` (a row per epoch), ``curves.png``; with ``tensorboard``
    the same figures as TensorBoard scalars (``train/loss``, ``dev/wer``, ...) under ``run_dir/tensorboard``.

    On resume, rows past the checkpoint's step are dropped so the curves do not
    double back (TensorBoard's own ``purge_step`` does the same for its events).
    """

    def __init__(self, run_dir: Path, enabled: bool = True, truncate_after: int = 0, tensorboard: bool = False):
        self.enabled = enabled
        self.run_dir = run_dir
        self.t0 = time.time()
        self.t_last = self.t_flush = time.time()
        self.tb = None
        if not enabled:
            return
        if tensorboard:
            self.tb = tensorboard_writer()(str(run_dir / "tensorboard"), purge_step=truncate_after + 1)
        self.files = {}
        for name, fields in (("train", TRAIN_FIELDS), ("dev", DEV_FIELDS)):
            path = run_dir / f"{name}.csv"
            rows = [r for r in _read(path) if int(r["step"]) <= truncate_after] if truncate_after else []
            buf = io.StringIO()
            w = csv.DictWriter(buf, fields)
            w.writeheader()
            w.writerows(rows)
            atomic_write_bytes(path, buf.getvalue().encode())
            f = open(path, "a", newline="")
            self.files[name] = (f, csv.DictWriter(f, fields))

    def step(self, step: int, epoch: int, loss: float, lr: float, grad_norm: float, audio_s: float) -> None:
        if not self.enabled:
            return
        now = time.time()
        rate = audio_s / max(now - self.t_last, 1e-9)
        self.t_last = now
        f, w = self.files["train"]
        if now - self.t_flush > 10:  # so that `tail -f train.csv` shows progress
            f.flush()
            self.t_flush = now
        w.writerow({"step": step, "epoch": epoch, "loss": f"{loss:.4f}", "lr": f"{lr:.3e}",
                    "grad_norm": f"{grad_norm:.3f}", "audio_s_per_s": f"{rate:.1f}", "time": f"{now - self.t0:.1f}"})
        if self.tb is not None:
            for key, value in (("loss", loss), ("lr", lr), ("grad_norm", grad_norm), ("audio_s_per_s", rate)):
                self.tb.add_scalar(f"train/{key}", value, step, walltime=now)

    def dev(self, step: int, epoch: int, loss: float, wer: float, cer: float) -> None:
        if not self.enabled:
            return
        f, w = self.files["dev"]
        w.writerow({"step": step, "epoch": epoch, "loss": f"{loss:.4f}", "wer": f"{wer:.4f}", "cer": f"{cer:.4f}",
                    "time": f"{time.time() - self.t0:.1f}"})
        for fh, _ in self.files.values():
            fh.flush()
        if self.tb is not None:
            for key, value in (("loss", loss), ("wer", wer), ("cer", cer)):
                self.tb.add_scalar(f"dev/{key}", value, step)
            self.tb.flush()
        plot_curves(self.run_dir)
        self.t_last = time.time()  # dev evaluation time is not training time

    def close(self) -> None:
        if self.enabled:
            for f, _ in self.files.values():
                f.close()
        if self.tb is not None:
            self.tb.close()


def tensorboard_writer():
    """torch's SummaryWriter class, or a UserError saying how to install what it needs."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("tensorboard=true needs the tensorboard package: pip install 'asr[tensorboard]' "
                        "(or pip install tensorboard), or leave tensorboard=false (train.csv and curves.png "
                        "have the same figures)") from None
    return SummaryWriter


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_curves(run_dir: Path) -> Path:
    """Training loss (per step, smoothed) and dev WER (per epoch) against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, dev = _read(run_dir / "train.csv"), _read(run_dir / "dev.csv")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [int(r["step"]) for r in train]
        loss = [float(r["loss"]) for r in train]
        k = max(1, len(loss) // 50)
        smooth = [sum(loss[max(0, i - k + 1): i + 1]) / len(loss[max(0, i - k + 1): i + 1]) for i in range(len(loss))]
        ax1.plot(steps, loss, alpha=0.3, label="loss")
        ax1.plot(steps, smooth, label=f"mean of {k}")
        ax1.set_yscale("log")
        ax1.legend(loc="upper right")
    else:  # every step so far skipped (e.g. while the loss scale settles): said on the plot, not left blank
        ax1.text(0.5, 0.5, "no training step taken yet", ha="center", va="center", transform=ax1.transAxes)
    ax1.set(xlabel="step", ylabel="CTC loss per utterance", title="training loss")
    if dev:
        ax2.plot([int(r["step"]) for r in dev], [100 * float(r["wer"]) for r in dev], "o-", label="WER")
        ax2.plot([int(r["step"]) for r in dev], [100 * float(r["cer"]) for r in dev], "s--", label="CER")
        ax2.legend()
    ax2.set(xlabel="step", ylabel="%", title="dev error rates (greedy)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    out = run_dir / "curves.png"
    atomic_write_bytes(out, buf.getvalue())
    return out
