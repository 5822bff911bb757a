"""Training: ``train(cfg)`` is the whole job; ``asr train`` and the recipes only compose a config.

Checkpoints: ``last.pt`` after every epoch (and every ``save_every`` steps, and on
SIGINT/SIGTERM), ``best.pt`` when dev WER improves. A run resumes from ``last.pt``
at the same epoch and batch, with the same batch order, optimizer and RNG state.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr import dist
from asr.align import ctc_min_frames
from asr.checkpoint import build_model, keep_epoch_checkpoint, load_checkpoint, model_state, save_checkpoint
from asr.config import TrainConfig, check_ranges, to_dataclass
from asr.data import Batch, BucketBatchSampler, UtteranceDataset, WaveBatch, collate, collate_waves, filter_by_duration
from asr.decode import GreedyDecoder
from asr.errors import UserError
from asr.evaluate import evaluate
from asr.features import LogMel
from asr.io import atomic_write_text, check_can_create
from asr.manifest import read_manifest
from asr.metrics_log import MetricsLog, tensorboard_writer
from asr.model import conv_out_lengths
from asr.noise import NoiseMixer, Reverb
from asr.precision import autocast_dtype, needs_loss_scale
from asr.stats import load_stats
from asr.text import CharTokenizer, build_tokenizer


class StopRequested(Exception):
    """SIGINT/SIGTERM arrived: a checkpoint was written, the run may be resumed."""


def lr_at(step: int, total: int, o, spent: float | None = None) -> float:
    """Linear warm-up to ``o.lr``, then cosine decay to ``o.lr * o.final_lr_ratio`` at step ``total``, or, under a
    time budget, as ``spent`` (the fraction of ``o.time_budget_min`` used) reaches 1."""
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    frac = min(1.0, spent if spent is not None else (step - o.warmup_steps) / max(1, total - o.warmup_steps))
    return o.lr * (o.final_lr_ratio + (1 - o.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW, its fused kernel on a CPU or GPU: on a CPU 2.9 against 7.4 ms per step for the main job's model
    (measured here, 2 threads), about 2 % of a training step; on an H200, 0.99-1.05x the default (foreach)
    one's training step rate for the LibriSpeech models, within the spread (benchmarks/gpu_variants_ab.py)."""
    return torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                             fused=device.type in ("cpu", "cuda") or None)


def load_split(path: str, cfg: TrainConfig, logmel: LogMel, tok: CharTokenizer, name: str,
               shard: tuple[int, int] = (0, 1), fastest: float = 1.0) -> UtteranceDataset:
    """Manifest -> dataset, dropping utterances too long/short or with more tokens than CTC can align.

    ``shard`` (rank, world size) keeps every world-th utterance from the rank-th on: the dev set's share of
    a DDP rank (a rank may get none when the dev set has fewer utterances than there are ranks).
    ``fastest``: the highest speed-perturbation factor, at which every kept utterance must still align.
    """
    utts = filter_by_duration(read_manifest(Path(path)), cfg.data, name)
    ds = UtteranceDataset(utts, logmel, tok)
    frames = conv_out_lengths(torch.tensor([ds.num_frames(i, fastest) for i in range(len(ds))]),  # sped up: fewer
                              cfg.model.subsampling)
    ok = [i for i in range(len(ds)) if ds.texts[i] and ctc_min_frames(tok.encode(ds.texts[i])) <= int(frames[i])]
    if len(ok) < len(ds):
        at = f" at speed x{fastest:g}" if fastest != 1.0 else ""
        print(f"warning: {name}: skipped {len(ds) - len(ok)} utterance(s) too fast{at} for the model's output frame "
              f"rate (CTC needs a frame per token plus one between repeated tokens)", file=sys.stderr)
    if not ok:
        raise UserError(f"{path}: no utterances left to use after filtering")
    keep = ok[shard[0]::shard[1]]
    if len(keep) < len(ds):
        ds = UtteranceDataset([utts[i] for i in keep], logmel, tok)
    if cfg.data.cache_features and len(ds):
        ds.fill_cache(workers=min(2, max(1, torch.get_num_threads())), desc=f"{name} features")
    return ds


FP16_INIT_SCALE = 2.0**16  # GradScaler's first loss scale (its default); halved after each overflow
PRECISION_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def _features_on_device(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether training batches get their log-mels on ``device`` (data.features_on) rather than in the loader."""
    where = cfg.data.features_on  # one of auto, loader, device (check_ranges)
    if where == "device" and cfg.data.cache_features:
        raise UserError("data.features_on=device computes log-mels per batch, but data.cache_features=true computes "
                        "them once up front; set data.cache_features=false (or data.features_on=loader)")
    return where == "device" or (where == "auto" and device.type == "cuda" and not cfg.data.cache_features)


def _check_inputs(cfg: TrainConfig) -> None:
    """Fail before any work, naming the key: values out of range, missing manifests, tensorboard not installed."""
    check_ranges(cfg)
    for key in ("train_manifest", "dev_manifest"):
        if not Path(getattr(cfg.data, key)).is_file():
            raise UserError(f"data.{key}={getattr(cfg.data, key)}: no such manifest file; make it with "
                            f"'asr prepare' or set data.{key}=PATH")
    if cfg.tensorboard:
        tensorboard_writer()  # raises UserError when the package is missing
    check_can_create(cfg.run_dir, f"run_dir={cfg.run_dir}")  # now, not after the features are computed


def _datasets(cfg: TrainConfig, tok: CharTokenizer, device: torch.device, rank: int, world: int
              ) -> tuple[UtteranceDataset, UtteranceDataset, LogMel | None]:
    """The training set (with its noise and reverberation), this rank's share of the dev set, and the log-mel
    module that runs on ``device`` when batches get their features there (else None)."""
    logmel = LogMel(cfg.features)
    # log-mels of uncached audio on the training device (a GPU), per batch: loader workers then only decode audio
    device_logmel = LogMel(cfg.features).to(device) if _features_on_device(cfg, device) else None
    train_ds = load_split(cfg.data.train_manifest, cfg, logmel, tok, "train",
                          fastest=max(cfg.data.speed_perturb, default=1.0))
    dev_ds = load_split(cfg.data.dev_manifest, cfg, logmel, tok, "dev", shard=(rank, world))  # scored in shares
    train_ds.waveforms = device_logmel is not None
    if cfg.data.noise:
        train_ds.noise = NoiseMixer(cfg.data.noise, tuple(cfg.data.noise_snr), cfg.data.noise_prob,
                                    cfg.features.sample_rate)
    if cfg.data.rir:
        train_ds.rir = Reverb(cfg.data.rir, cfg.data.rir_prob, cfg.features.sample_rate)
    return train_ds, dev_ds, device_logmel


def _init_weights(cfg: TrainConfig, model, train_ds: UtteranceDataset) -> None:
    """A new run's start: a trained model's weights (``init_from``, fine-tuning) or fresh ones, and the
    normalization statistics (``data.stats``, else the training set's own, unless ``init_from`` brought them)."""
    if cfg.init_from:
        _load_fitting(Path(cfg.init_from), cfg, model, "start from it")
        print(f"starting from {cfg.init_from}'s weights", file=sys.stderr)
    if cfg.data.stats or not cfg.init_from:
        # global mean/var normalization from the training set (precomputed by `asr stats` for large corpora)
        model.norm.set_stats(*(load_stats(cfg.data.stats, cfg.features) if cfg.data.stats else train_ds.stats()))


def train(cfg) -> Path:
    """Train a model as ``cfg`` (TrainConfig or composed DictConfig) says; returns the run directory."""
    cfg: TrainConfig = to_dataclass(cfg)
    _check_inputs(cfg)
    run_dir = Path(cfg.run_dir).resolve()
    rank, world = dist.setup()
    device = dist.pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    amp = autocast_dtype(cfg.precision, device)
    # fp16 gradients under- and overflow without a loss scale; disabled (a pass-through) otherwise
    scaler = torch.amp.GradScaler(device.type, init_scale=FP16_INIT_SCALE, enabled=needs_loss_scale(amp, device))
    torch.manual_seed(cfg.seed)
    tok = build_tokenizer(cfg)  # char, or BPE trained on the training transcripts (the checkpoint's on resume)
    train_ds, dev_ds, device_logmel = _datasets(cfg, tok, device, rank, world)
    model = build_model(cfg, tok)
    opt = make_optimizer(model, cfg, device)
    sampler = BucketBatchSampler([train_ds.num_frames(i) for i in range(len(train_ds))], cfg.data.max_frames,
                                 seed=cfg.seed, rank=rank, world_size=world, sortagrad=cfg.data.sortagrad,
                                 speeds=cfg.data.speed_perturb, noise=bool(cfg.data.noise or cfg.data.rir),
                                 multiple=cfg.data.batch_multiple, max_utts=cfg.data.max_utts)
    state = {"epoch": 0, "batch": 0, "step": 0, "best_wer": float("inf"), "bad_steps": 0, "skipped": 0,
             "since_best": 0,  # epochs in a row without a better dev WER (optim.patience)
             "train_s": 0.0}  # wall time of the training loop so far, over all starts of the run, seconds
    last = run_dir / "last.pt"
    if cfg.resume and last.is_file():
        _resume(last, cfg, model, opt, state, scaler)
    else:
        _init_weights(cfg, model, train_ds)
    model.to(device)
    ddp_model = dist.wrap(model, device)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", _yaml(cfg))
        _record_start(run_dir, device, world, state)
    log = MetricsLog(run_dir, enabled=rank == 0, truncate_after=state["step"], tensorboard=cfg.tensorboard)
    accum = cfg.optim.accum_grad
    total_steps = cfg.optim.epochs * math.ceil(len(sampler) / accum)  # optimizer steps
    if rank == 0:
        print(f"model: {model.num_params() / 1e6:.2f} M parameters; train {len(train_ds)} utterances "
              f"({sum(u.duration for u in train_ds.utts) / 3600:.2f} h), {len(sampler)} batches/epoch"
              f"{f' ({total_steps // cfg.optim.epochs} optimizer steps of {accum})' if accum > 1 else ''}, "
              f"device {device}{', ' + PRECISION_NAMES[amp] if amp else ''}", file=sys.stderr)

    clock = _Clock(state["train_s"], cfg.optim.time_budget_min * 60, device)

    def checkpoint(name: str = "last.pt") -> None:
        state["train_s"] = clock.elapsed()
        if rank == 0:
            save_checkpoint(run_dir / name, {**model_state(model, cfg, tok), "optimizer": opt.state_dict(),
                                             "train_state": dict(state), "rng": torch.get_rng_state(),
                                             "scaler": scaler.state_dict()})

    def dev_pass_and_checkpoints(epoch_label: float, out_of_time: bool) -> None:
        """After an epoch (or the part of one the time budget left): dev WER, last.pt, best.pt, epoch-K.pt."""
        dev_start = clock.elapsed()
        result = evaluate(model, dev_ds, GreedyDecoder(tok), device, max_frames=2 * cfg.data.max_frames,
                          precision=amp, num_workers=cfg.data.num_workers, logmel=device_logmel)
        wer, cer, dev_loss = _dev_scores(result, len(dev_ds), device)  # this rank's share + the others
        improved = wer < state["best_wer"]
        state["best_wer"] = min(state["best_wer"], wer)
        state["since_best"] = 0 if improved else state["since_best"] + 1
        checkpoint()
        if cfg.keep_epochs and rank == 0:  # weights of the last N epochs (a cut-short one as the next), for
            keep_epoch_checkpoint(run_dir, math.ceil(epoch_label), model_state(model, cfg, tok),  # asr average
                                  cfg.keep_epochs)
        if improved and rank == 0:  # what inference, fine-tuning and `asr info` read; no optimizer state
            save_checkpoint(run_dir / "best.pt", {**model_state(model, cfg, tok), "train_state": dict(state)})
        log.dev(state["step"], epoch_label, dev_loss, wer, cer)
        clock.reserve_s = clock.elapsed() - dev_start  # kept free at the end of the budget for the last one
        if rank == 0:
            print(f"epoch {epoch_label}: dev WER {100 * wer:.2f}% CER {100 * cer:.2f}% "
                  f"loss {dev_loss:.3f}{' (best)' if improved else ''}"
                  f"{f' (time budget spent: {clock.elapsed() / 60:.1f} min)' if out_of_time else ''}", file=sys.stderr)

    stop = _StopFlag()
    finished = False  # the epochs ran out, or patience or the time budget stopped them: every rank gets here
    try:
        while state["epoch"] < cfg.optim.epochs:
            if _patience_spent(cfg, state, rank) or clock.spent()[1]:  # also checked when a run resumes
                break
            sampler.set_epoch(state["epoch"])
            batches = sampler.epoch_batches()[state["batch"]:]
            epoch_end = state["batch"] + len(batches)
            group: list[Batch] = []  # batches of one optimizer step (optim.accum_grad)
            loader = DataLoader(train_ds, batch_sampler=batches, collate_fn=collate_waves if device_logmel else collate,
                                num_workers=cfg.data.num_workers,
                                pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed))
            ddp_model.train()
            bar = tqdm(loader, desc=f"epoch {state['epoch'] + 1}/{cfg.optim.epochs}{clock.left()}", unit="batch",
                       total=len(batches), disable=rank != 0, file=sys.stderr, mininterval=2)
            out_of_time = False  # the budget ran out within this epoch
            for batch in bar:
                if not group:  # between optimizer steps: the time budget's check (all ranks agree)
                    spent, out_of_time = clock.spent()
                    if out_of_time:
                        break
                group.append(batch.featurize(device_logmel) if isinstance(batch, WaveBatch) else batch)
                state["batch"] += 1
                if len(group) < accum and state["batch"] < epoch_end:
                    continue
                lr_now = lr_at(state["step"], total_steps, cfg.optim, spent)
                loss, gnorm, lr = _step(ddp_model, opt, group, device, amp, lr_now, cfg.optim.clip_norm, scaler)
                group, done = [], group
                if loss is None:  # gnorm says why
                    _count_skipped(state, gnorm, done[0], cfg)
                    continue
                state["bad_steps"] = 0
                state["step"] += 1
                audio_s = sum(float(b.feature_lengths.sum()) for b in done) * cfg.features.hop_ms / 1000
                log.step(state["step"], state["epoch"] + 1, loss, lr, gnorm, audio_s)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", refresh=False)
                if stop.requested:
                    checkpoint()
                    raise StopRequested(f"stopped by signal at step {state['step']}; {last} saved, "
                                        f"run the same command to resume")
                if cfg.save_every and state["step"] % cfg.save_every == 0:
                    checkpoint()
            bar.close()
            if out_of_time:  # stays at this batch of this epoch: a longer budget resumes from there
                epoch_label = round(state["epoch"] + state["batch"] / epoch_end, 2)  # epochs done, a fraction
            else:
                state["epoch"] += 1
                state["batch"] = 0
                epoch_label = state["epoch"]
            dev_pass_and_checkpoints(epoch_label, out_of_time)
            if out_of_time:
                break
        finished = True
    finally:
        stop.restore()
        log.close()
        dist.cleanup(wait=finished)
    return run_dir


class _Clock:
    """The training loop's wall time, summed over the starts of a run, and its budget (optim.time_budget_min).

    Under DDP every rank follows rank 0's clock (one all-reduce per check), so that all of them use the same
    learning rate and stop at the same step.
    """

    now = staticmethod(time.monotonic)  # seconds, from an arbitrary start

    def __init__(self, before_s: float, budget_s: float, device: torch.device):
        self.start = self.now() - before_s  # before_s: spent by earlier starts of this run
        self.budget_s = budget_s  # 0: no budget
        self.reserve_s = 0.0  # the last dev pass and checkpoints took this long: the final ones need it too
        self.device = device

    def elapsed(self) -> float:
        return self.now() - self.start

    def spent(self) -> tuple[float | None, bool]:
        """(fraction of the budget used, None without one; whether training must stop now to end its last dev pass
        within it)."""
        if not self.budget_s:
            return None, False
        elapsed, reserve = self.elapsed(), self.reserve_s
        if dist.world_size() > 1:
            elapsed, reserve = dist.all_sum([elapsed, reserve] if dist.rank() == 0 else [0.0, 0.0], self.device)
        return elapsed / self.budget_s, elapsed + reserve >= self.budget_s

    def left(self) -> str:
        """For the progress bar: ', 6.2 of 9.5 min left' under a budget, else ''."""
        if not self.budget_s:
            return ""
        left_min, budget_min = max(0.0, self.budget_s - self.elapsed()) / 60, self.budget_s / 60
        return f", {left_min:.1f} of {budget_min:.1f} min left"  # one precision: not "9.8 of 9.77"


def _count_skipped(state: dict, why: str, batch: Batch, cfg: TrainConfig) -> None:
    """Count a batch ``_step`` skipped; a UserError after ``optim.max_bad_steps`` of them in a row."""
    state["skipped"] += 1
    state["bad_steps"] += 1
    print(f"warning: {why} at step {state['step'] + 1} (batch {batch.ids[0]}...), "
          f"batch skipped ({state['skipped']} so far)", file=sys.stderr)
    if state["bad_steps"] >= cfg.optim.max_bad_steps:
        raise UserError(f"{state['bad_steps']} batches skipped in a row at step {state['step']} "
                        f"(last: {why}): training diverged or does not fit; lower optim.lr or "
                        f"data.max_frames, or check the data")


def _patience_spent(cfg: TrainConfig, state: dict, rank: int) -> bool:
    """Whether ``optim.patience`` epochs in a row brought no better dev WER (then rank 0 says so)."""
    if not 0 < cfg.optim.patience <= state["since_best"]:
        return False
    if rank == 0:
        print(f"no better dev WER for {state['since_best']} epochs (optim.patience): stopping after "
              f"epoch {state['epoch']} of {cfg.optim.epochs}", file=sys.stderr)
    return True


def _record_start(run_dir: Path, device: torch.device, world: int, state: dict) -> None:
    """Append this start (a fresh run or a resume) to RUN_DIR/starts.jsonl: when, where, with what software,
    from which point (epochs done, batch, step), so a run's numbers can be traced to the code and machine."""
    import platform
    import subprocess

    import torchaudio

    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv, "host": platform.node(),
             "python": platform.python_version(), "torch": torch.__version__, "torchaudio": torchaudio.__version__,
             "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
             "threads": torch.get_num_threads(), "world_size": world, "git": commit,
             "epochs_done": state["epoch"], "batch": state["batch"], "step": state["step"]}
    path = run_dir / "starts.jsonl"
    old = path.read_text() if path.is_file() else ""
    atomic_write_text(path, old + json.dumps(entry) + "\n")


def _dev_scores(result, n: int, device: torch.device) -> tuple[float, float, float]:
    """WER, CER and mean CTC loss per utterance of the whole dev set, from this rank's share of it (``n``
    utterances, scored in ``result``) and the other ranks' (one all-reduce; the share is all of it without DDP)."""
    rows = result.rows
    t = dist.all_sum([sum(r["word_errors"] for r in rows), sum(r["ref_words"] for r in rows),
                      sum(r["char_errors"] for r in rows), sum(r["ref_chars"] for r in rows), result.loss * n, n],
                     device)
    return t[0] / max(t[1], 1), t[2] / max(t[3], 1), t[4] / max(t[5], 1)


def _resume(last: Path, cfg: TrainConfig, model, opt, state: dict, scaler) -> None:
    """Load ``last`` into model, optimizer, loss scaler, training state and RNG; a one-line error when it does not
    fit."""
    ckpt = _load_fitting(last, cfg, model, "resume", fix="use another run_dir, the settings it was trained with, "
                                                          "or resume=false to start over in it")
    opt.load_state_dict(ckpt["optimizer"])
    if scaler.is_enabled() and ckpt.get("scaler"):  # fp16 now and then (a run that switched keeps the initial scale)
        scaler.load_state_dict(ckpt["scaler"])
    state.update(ckpt["train_state"])
    torch.set_rng_state(ckpt["rng"])
    print(f"resuming {last}: epoch {state['epoch'] + 1}, batch {state['batch']}, step {state['step']}",
          file=sys.stderr)


# Model settings that change what the weights compute without changing their shapes, and what to say when they differ.
_SAME_SHAPES = {"utterance_cmn": "input normalization differs", "residual": "the layers' residual connections differ"}


def _load_fitting(path: Path, cfg: TrainConfig, model, action: str,
                  fix: str = "use the features and model settings it was trained with") -> dict:
    """Load checkpoint ``path``'s weights into ``model``; returns the checkpoint. A one-line error when it does
    not fit: its features, input normalization or layer shapes differ from ``cfg``'s.

    Other features or a per-utterance normalization would load without complaint and silently feed the
    weights inputs they never saw; other dropout or a new number of epochs are fine.
    """
    ckpt = load_checkpoint(path)
    old = ckpt.get("config", {})
    diffs = []
    for sec in ("features", "model"):
        now = getattr(cfg, sec)
        default = asdict(type(now)())  # what a checkpoint made before a setting existed was trained with
        diffs += [f"{sec}.{k}={old[sec].get(k, default[k])!r} there, {v!r} now" for k, v in asdict(now).items()
                  if sec in old and old[sec].get(k, default[k]) != v]
    why = "features differ" if any(d.startswith("features.") for d in diffs) else next(
        (reason for k, reason in _SAME_SHAPES.items() if any(d.startswith(f"model.{k}=") for d in diffs)), None)
    if why is None:
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError:
            why = "layer shapes differ"
    if why:
        raise UserError(f"{path}: cannot {action}: {why} ({'; '.join(diffs) or 'tokenizer or vocabulary'}); {fix}")
    return ckpt


def _step(model, opt, batches: Batch | list[Batch], device, amp, lr: float, clip: float,
          scaler: torch.amp.GradScaler | None = None):
    """One optimizer step over one batch, or over several whose gradients add up (optim.accum_grad, each batch's
    loss divided by their number, as ESPnet's accum_grad); returns (mean loss per utterance, grad norm, lr), or
    (None, why, lr) when the step is skipped.

    The step is skipped when a loss or the gradient is not finite (on any rank), and when a batch
    runs out of accelerator memory even split down to single utterances. In fp16 ``scaler``
    scales the loss before backward and the gradients back before clipping; a gradient that
    overflowed lowers the scale (and skips the step, as GradScaler does). None: no scaling.
    """
    batches = [batches] if isinstance(batches, Batch) else batches
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    why = "non-finite loss"
    results = []  # (summed loss, utterances) per batch; a None loss: not finite
    out_of_memory = False
    try:
        for k, batch in enumerate(batches):
            # DDP: gradients of all but the last batch add up locally; the last backward all-reduces the sum
            with model.no_sync() if k < len(batches) - 1 and hasattr(model, "no_sync") else contextlib.nullcontext():
                results.append(_forward_backward(model, batch.to(device), device, amp, scaler, accum=len(batches)))
    except torch.OutOfMemoryError:
        if dist.world_size() > 1:  # the other ranks wait in a collective: no split can be agreed on
            raise UserError(f"out of memory on a batch of {_describe(batch)} on rank {dist.rank()}; "
                            f"lower data.max_frames") from None
        # the pieces are tried after this clause: within it, the traceback keeps the failed attempt's frames,
        # and with them its activations, in memory
        out_of_memory = True
    if out_of_memory:
        opt.zero_grad(set_to_none=True)  # a backward may have stopped half-way: the step's batches again
        _free_memory(device)
        print(f"warning: out of memory on a batch of {_describe(batch)}; splitting it in two", file=sys.stderr)
        try:
            results = [_split_forward_backward(model, b, device, amp, scaler, len(batches)) for b in batches]
        except torch.OutOfMemoryError:  # one utterance alone does not fit
            results, why = [(None, 0)], "out of memory"
    if all(total is not None for total, _ in results):
        scaler.unscale_(opt)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if torch.isfinite(gnorm):
            scaler.step(opt)
            scaler.update()
            return sum(t for t, _ in results) / sum(n for _, n in results), gnorm.item(), lr
        why = "non-finite gradient"
        if scaler.is_enabled():
            scaler.update()  # overflow: a lower loss scale for the next step
            why += f" (fp16 overflow; loss scale lowered to {scaler.get_scale():g})"
    opt.zero_grad(set_to_none=True)  # never update the model with a skipped step (on any rank)
    return None, why, lr


def _forward_backward(model, batch, device, amp, scaler, n_global: int | None = None, accum: int = 1):
    """CTC loss of a batch and its gradient (added to .grad, times ``scaler``'s loss scale in fp16, divided by
    ``accum``); returns (summed loss, utterances in the global batch).

    The summed loss is None when it is not finite on some rank; nothing is backpropagated then.
    ``n_global`` is the global batch size when ``batch`` is a piece of it (single process only).
    """
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        log_probs, out_lengths = model(batch.features, batch.feature_lengths.to(device))
    # CTC wants (T, B, V); the loss is summed over tokens and averaged over the global batch's
    # utterances. DDP averages gradients over ranks, hence the factor world: sum_all / n_all.
    loss_sum = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), batch.targets, out_lengths,
                                            batch.target_lengths, blank=0, reduction="sum")
    n, n_finite, total = dist.all_sum([len(batch.ids), float(torch.isfinite(loss_sum)), loss_sum.item()], device)
    if n_finite < dist.world_size():
        return None, n
    scaler.scale(loss_sum * dist.world_size() / ((n_global or n) * accum)).backward()
    return total, n_global or n


def _split_forward_backward(model, batch, device, amp, scaler, accum: int = 1):
    """The batch's gradient accumulated over pieces small enough to fit.

    Returns (summed loss, n), or (None, n) for a non-finite loss; raises OutOfMemoryError when even one
    utterance does not fit.
    """
    n_global = len(batch.ids)
    pieces, total = [batch], 0.0
    while pieces:
        piece = pieces.pop(0)
        try:
            loss, _ = _forward_backward(model, piece.to(device), device, amp, scaler, n_global, accum)
        except torch.OutOfMemoryError:
            _free_memory(device)
            if len(piece.ids) == 1:
                print(f"warning: out of memory on the single utterance {piece.ids[0]} "
                      f"({int(piece.feature_lengths[0])} frames): batch skipped; lower data.max_duration",
                      file=sys.stderr)
                raise
            pieces = list(_halves(piece)) + pieces
            continue
        if loss is None:
            return None, n_global
        total += loss
    return total, n_global


def _halves(batch: Batch) -> tuple[Batch, Batch]:
    """Split a batch by utterances into two, each padded only to its own longest utterance."""
    h = len(batch.ids) // 2
    cut = int(batch.target_lengths[:h].sum())
    out = []
    for sl, tsl in ((slice(0, h), slice(0, cut)), (slice(h, None), slice(cut, None))):
        lengths = batch.feature_lengths[sl]
        out.append(Batch(batch.features[sl, : int(lengths.max())], lengths, batch.targets[tsl],
                         batch.target_lengths[sl], batch.ids[sl], batch.texts[sl]))
    return out[0], out[1]


def _describe(batch: Batch) -> str:
    return (f"{len(batch.ids)} utterances, {tuple(batch.features.shape)} padded features "
            f"(longest {int(batch.feature_lengths.max())} frames, first id {batch.ids[0]})")


def _free_memory(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the next step boundary and exits."""

    def __init__(self):
        self.requested = False
        self._old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint at the end of this step...", file=sys.stderr)

    def restore(self):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _yaml(cfg: TrainConfig) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(asdict(cfg)))
