"""Faults during training: non-finite losses are skipped without touching the model; a run of
them stops with a clear message; bad paths are caught before any work starts."""

import math
import re

import pytest
import torch

import asr.precision
import asr.train
from asr.checkpoint import load_checkpoint
from asr.config import compose
from asr.errors import UserError
from asr.train import train
from conftest import tiny_overrides


def poison(monkeypatch, bad_calls):
    """Make ctc_loss return NaN on the given call numbers (1-based)."""
    real = torch.nn.functional.ctc_loss
    calls = {"n": 0}

    def ctc_loss(*args, **kw):
        calls["n"] += 1
        out = real(*args, **kw)
        return out * float("nan") if calls["n"] in bad_calls else out

    monkeypatch.setattr(torch.nn.functional, "ctc_loss", ctc_loss)


def test_nan_loss_batches_are_skipped_and_counted(digit_manifests, tmp_path, monkeypatch, capsys):
    snapshots = []
    real_step = asr.train._step

    def step(model, *args, **kw):
        before = [p.detach().clone() for p in model.parameters()]
        out = real_step(model, *args, **kw)
        snapshots.append((out[0], before, [p.detach().clone() for p in model.parameters()]))
        return out

    monkeypatch.setattr(asr.train, "_step", step)
    poison(monkeypatch, bad_calls={3, 4})
    train(compose(tiny_overrides(tmp_path / "run", *digit_manifests, epochs=1)))
    state = load_checkpoint(tmp_path / "run" / "last.pt")["train_state"]
    assert state["skipped"] == 2
    assert state["step"] == len(snapshots) - 2  # skipped batches are not optimizer steps
    for i, (loss, before, after) in enumerate(snapshots):
        unchanged = all(torch.equal(a, b) for a, b in zip(before, after))
        assert unchanged == (loss is None), i  # the model moves on good batches only
    assert "non-finite loss" in capsys.readouterr().err


def test_many_nan_losses_stop_the_run(digit_manifests, tmp_path, monkeypatch):
    poison(monkeypatch, bad_calls=set(range(1, 1000)))
    with pytest.raises(UserError, match="3 batches skipped in a row"):
        train(compose(tiny_overrides(tmp_path / "run", *digit_manifests, epochs=1) + ["optim.max_bad_steps=3"]))


def _oom_setup(monkeypatch, max_cells):
    """A small model whose forward raises OutOfMemoryError above max_cells padded (utterance x frame) cells."""
    from asr.config import FeatureConfig, ModelConfig, SpecAugmentConfig
    from asr.data import Batch
    from asr.model import BiLSTMCTC

    torch.manual_seed(0)
    model = BiLSTMCTC(ModelConfig(conv_channels=4, hidden=16, layers=1, dropout=0.0), FeatureConfig(),
                      SpecAugmentConfig(freq_masks=0, time_masks=0), vocab_size=29).train()
    lengths = torch.tensor([120, 100, 90, 60, 40])
    targets = [torch.randint(1, 29, (n // 8,)) for n in lengths.tolist()]
    batch = Batch(torch.randn(5, 120, 80) * (torch.arange(120) < lengths[:, None])[..., None], lengths,
                  torch.cat(targets), torch.tensor([len(t) for t in targets]), [f"u{i}" for i in range(5)], [""] * 5)
    real = BiLSTMCTC.forward

    def forward(self, feats, lens):
        if feats.shape[0] * feats.shape[1] > max_cells:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, feats, lens)

    return model, batch, lambda: monkeypatch.setattr(BiLSTMCTC, "forward", forward)


def _grads_after_step(model, batch):
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)  # lr 0: the step leaves the weights, .grad stays
    out = asr.train._step(model, opt, batch, torch.device("cpu"), None, 0.0, 1e9)
    return out, [p.grad.clone() for p in model.parameters()]


def test_out_of_memory_batch_is_split_with_the_same_gradient(monkeypatch, capsys):
    model, batch, patch = _oom_setup(monkeypatch, max_cells=250)  # whole batch: 600 cells; 2-3 utterances fit
    (loss, gnorm, _), grads = _grads_after_step(model, batch)
    patch()
    (loss_split, gnorm_split, _), grads_split = _grads_after_step(model, batch)
    assert "out of memory on a batch of 5 utterances" in capsys.readouterr().err
    assert loss_split == pytest.approx(loss, rel=1e-5)
    assert gnorm_split == pytest.approx(gnorm, rel=1e-4)
    for g, gs in zip(grads, grads_split):
        assert torch.allclose(g, gs, atol=1e-6, rtol=1e-4)


def test_out_of_memory_on_one_utterance_skips_the_batch(monkeypatch, capsys):
    model, batch, patch = _oom_setup(monkeypatch, max_cells=100)  # the 120-frame utterance never fits
    patch()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss, why, _ = asr.train._step(model, opt, batch, torch.device("cpu"), None, 1e-2, 5.0)
    assert loss is None and why == "out of memory"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert "single utterance u0 (120 frames)" in capsys.readouterr().err


def test_out_of_memory_retry_starts_after_the_failed_attempt_is_freed(monkeypatch):
    """The pieces are tried once the whole batch's failed forward is gone: inside the ``except`` clause its frames
    (and on a GPU every activation they hold) stay alive through the traceback, and may leave no room for even
    one utterance."""
    import weakref

    from asr.model import BiLSTMCTC

    model, batch, _ = _oom_setup(monkeypatch, max_cells=0)
    real = BiLSTMCTC.forward
    failed, alive_at_retry = [], []

    def forward(self, feats, lens):
        if feats.shape[0] * feats.shape[1] > 250:
            held = torch.zeros(feats.shape[0], 1000)  # stands for the activations of the failed attempt
            failed.append(weakref.ref(held))
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        alive_at_retry.append(sum(r() is not None for r in failed))
        return real(self, feats, lens)

    monkeypatch.setattr(BiLSTMCTC, "forward", forward)
    (loss, _, _), _ = _grads_after_step(model, batch)
    assert loss is not None and failed and alive_at_retry
    assert alive_at_retry[0] == 0


def test_out_of_memory_under_ddp_is_a_clear_error(monkeypatch):
    model, batch, patch = _oom_setup(monkeypatch, max_cells=0)
    patch()
    monkeypatch.setattr(asr.train.dist, "world_size", lambda: 2)
    with pytest.raises(UserError, match="out of memory on a batch of 5 utterances.*lower data.max_frames"):
        asr.train._step(model, torch.optim.AdamW(model.parameters()), batch, torch.device("cpu"), None, 1e-3, 5.0)


def test_missing_manifest_named_before_work(tmp_path):
    with pytest.raises(UserError, match="data.train_manifest=.*no such manifest"):
        train(compose([f"run_dir={tmp_path}", f"data.train_manifest={tmp_path}/none.jsonl"]))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("change, message", [
    (["model.hidden=16"], r"layer shapes differ \(model.hidden=32 there, 16 now\)"),
    (["features.n_mels=40"], r"features differ \(features.n_mels=80 there, 40 now\)"),
])
def test_resume_with_other_settings_is_a_clear_error(digit_manifests, tmp_path, change, message):
    """A run directory resumes only with the features and layer shapes it was trained with; other settings
    (more epochs, another learning rate) resume."""
    run = tmp_path / "run"
    base = tiny_overrides(run, *digit_manifests, epochs=1)
    train(compose(base))
    with pytest.raises(UserError, match=message + ".*use another run_dir"):
        train(compose(base + ["optim.epochs=2"] + change))
    train(compose(base + ["optim.epochs=2", "optim.lr=1e-3"]))  # resumes and finishes epoch 2
    assert load_checkpoint(run / "last.pt")["train_state"]["epoch"] == 2


@pytest.mark.parametrize("change, message", [
    (["model.hidden=16"], r"cannot start from it: layer shapes differ \(model.hidden=32 there, 16 now\)"),
    (["features.n_mels=40"], r"cannot start from it: features differ \(features.n_mels=80 there, 40 now\)"),
    (["model.utterance_cmn=true"], r"cannot start from it: input normalization differs "
                                   r"\(model.utterance_cmn=False there, True now\)"),
    (["model.residual=true"], r"cannot start from it: the layers' residual connections differ "
                              r"\(model.residual=False there, True now\)"),
    (["tokenizer=bpe"], r"trained with char tokens, but tokenizer.type=bpe: set tokenizer.type=char"),
])
def test_init_from_a_model_that_does_not_fit_is_a_clear_error(tiny_model, digit_manifests, tmp_path, change,
                                                               message):
    """Fine-tuning starts only from a checkpoint with this run's features, normalization, layer shapes and
    token type; nothing is written before the error."""
    run = tmp_path / "run"
    with pytest.raises(UserError, match=message):
        train(compose(tiny_overrides(run, *digit_manifests, epochs=1) + [f"init_from={tiny_model}"] + change))
    assert not run.exists()


def test_init_from_a_checkpoint_older_than_a_setting_takes_its_default(tiny_model, digit_manifests, tmp_path):
    """A checkpoint saved before a model setting existed (no ``residual`` in its config) was trained as that
    setting's default (false) does: fine-tuning from it works with the default, and ``model.residual=true`` is the
    clear error."""
    from asr.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(tiny_model)
    del ckpt["config"]["model"]["residual"]
    old = tmp_path / "old.pt"
    save_checkpoint(old, ckpt)
    with pytest.raises(UserError, match=r"residual connections differ \(model.residual=False there, True now\)"):
        train(compose(tiny_overrides(tmp_path / "bad", *digit_manifests, epochs=1)
                      + [f"init_from={old}", "model.residual=true"]))
    run = train(compose(tiny_overrides(tmp_path / "run", *digit_manifests, epochs=1) + [f"init_from={old}"]))
    assert (run / "best.pt").is_file()


def test_init_from_a_missing_checkpoint_is_a_clear_error(digit_manifests, tmp_path):
    with pytest.raises(UserError, match="none.pt: no such checkpoint"):
        train(compose(tiny_overrides(tmp_path / "run", *digit_manifests) + [f"init_from={tmp_path}/none.pt"]))


@pytest.mark.parametrize("precision, device, native_bf16, expected", [
    ("auto", "cpu", False, None), ("auto", "cuda", True, torch.bfloat16), ("auto", "cuda", False, torch.float16),
    ("fp32", "cuda", True, None), ("fp16", "cuda", True, torch.float16), ("fp16", "cpu", False, torch.float16),
    ("bf16", "cuda", False, torch.bfloat16),
])
def test_precision_auto_picks_fp16_on_gpus_without_native_bf16(monkeypatch, capsys, precision, device, native_bf16,
                                                               expected):
    """auto: bf16 where the GPU computes it (A100, H100), fp16 with a loss scaler on older GPUs (V100, T4), fp32 on
    CPU; bf16 asked for on an older GPU runs, with a warning that names the faster choice."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0) if native_bf16 else (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    assert asr.precision.autocast_dtype(precision, torch.device(device)) is expected
    warned = "Tesla T4, which has no native bf16" in capsys.readouterr().err
    assert warned == (precision == "bf16" and not native_bf16)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch, capsys, native):
    """precision=bf16 on a CPU runs either way; where oneDNN would emulate it (slower than fp32) a warning says so
    and names fp32."""
    monkeypatch.setattr(asr.precision, "cpu_has_native_bf16", lambda: native)
    assert asr.precision.autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert ("emulates it, slower than fp32; precision=fp32" in capsys.readouterr().err) == (not native)


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni", True),  # Zen 4, Cooper Lake
    ("fpu sse2 avx2 avx512f amx_bf16 amx_tile", True),  # Sapphire Rapids
    ("fpu sse2 avx2 avx512f avx512bw avx512_vnni", False),  # Cascade Lake: AVX-512 without bf16
    ("fpu sse2 avx2", False),  # Zen 3
])
def test_cpu_has_native_bf16_reads_the_cpuinfo_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert asr.precision.cpu_has_native_bf16(str(cpuinfo)) is expected
    assert asr.precision.cpu_has_native_bf16(str(tmp_path / "missing")) is False  # not Linux: unknown, say no


def test_fp16_overflow_lowers_the_loss_scale_and_resume_keeps_it(digit_manifests, tmp_path, monkeypatch, capsys):
    """precision=fp16 (here on CPU) trains through a GradScaler: from a first loss scale of 2^20 the fp16
    gradients overflow, those batches are skipped and the scale halves until they fit; training goes on with
    finite losses. The scale is checkpointed: a resumed run starts from it, not from 2^20 again."""
    monkeypatch.setattr(asr.train, "FP16_INIT_SCALE", 2.0**20)
    base = tiny_overrides(tmp_path / "run", *digit_manifests, epochs=1) + ["precision=fp16"]
    train(compose(base))
    err = capsys.readouterr().err
    assert "fp16" in err and "fp16 overflow; loss scale lowered to 524288" in err  # 2^19 after the first
    first = load_checkpoint(tmp_path / "run" / "last.pt")
    scale = first["scaler"]["scale"]
    assert 1.0 <= scale < 2.0**20 and first["train_state"]["step"] > 0
    assert first["train_state"]["skipped"] == round(math.log2(2.0**20 / scale))  # one skipped batch per halving
    train(compose(base + ["optim.epochs=2"]))  # resumes from that scale: any overflow now lowers it further
    lowered = [float(x) for x in re.findall(r"loss scale lowered to (\S+)\)", capsys.readouterr().err)]
    assert all(x < scale for x in lowered)
    second = load_checkpoint(tmp_path / "run" / "last.pt")
    assert second["scaler"]["scale"] == min(lowered, default=scale) and second["train_state"]["epoch"] == 2


def _equal_length_batch(n=4, frames=100):
    from asr.config import FeatureConfig, ModelConfig, SpecAugmentConfig
    from asr.data import Batch
    from asr.model import BiLSTMCTC

    torch.manual_seed(1)
    model = BiLSTMCTC(ModelConfig(conv_channels=4, hidden=16, layers=1, dropout=0.0), FeatureConfig(),
                      SpecAugmentConfig(freq_masks=0, time_masks=0), vocab_size=29).train()
    targets = torch.randint(1, 29, (n * 8,))
    batch = Batch(torch.randn(n, frames, 80), torch.full((n,), frames), targets, torch.full((n,), 8),
                  [f"u{i}" for i in range(n)], [""] * n)
    return model, batch


@pytest.mark.parametrize("oom", [False, True])
def test_accumulated_halves_give_the_whole_batchs_step(monkeypatch, capsys, oom):
    """optim.accum_grad: two batches of two utterances accumulate the gradient and loss of one batch of four
    (each batch's mean loss over their number); also when the second one runs out of memory and the step's
    batches are redone in pieces."""
    model, batch = _equal_length_batch()
    whole, grads = _grads_after_step(model, batch)
    halves = list(asr.train._halves(batch))
    if oom:
        real = type(model).forward

        def forward(self, feats, lens):
            if feats.shape[0] > 1 and getattr(forward, "armed", False):
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            forward.armed = True  # the first batch fits, the second does not: split to single utterances
            return real(self, feats, lens)

        monkeypatch.setattr(type(model), "forward", forward)
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)
    loss, gnorm, _ = asr.train._step(model, opt, halves, torch.device("cpu"), None, 0.0, 1e9)
    assert loss == pytest.approx(whole[0], rel=1e-5) and gnorm == pytest.approx(whole[1], rel=1e-4)
    for g, p in zip(grads, model.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6, rtol=1e-4)
    assert ("out of memory on a batch of 2 utterances" in capsys.readouterr().err) == oom
