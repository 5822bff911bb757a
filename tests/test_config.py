"""Every config group option composes, validates and builds what it names."""

import pytest
import torch

from asr.config import CONF_DIR, check_ranges, compose, to_dataclass
from asr.checkpoint import build_model
from asr.decode import build_decoder
from asr.errors import UserError
from asr.features import LogMel
from asr.text import CharTokenizer

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF_DIR / g).glob("*.yaml"))]
PRIMARY = sorted(f.stem for f in CONF_DIR.glob("*.yaml"))


@pytest.mark.parametrize("primary", PRIMARY)
def test_primary_configs_compose_and_build(primary):
    cfg = to_dataclass(compose([], primary))
    check_ranges(cfg)
    tok = CharTokenizer()
    model = build_model(cfg, tok)
    feats = LogMel(cfg.features)(torch.randn(16000))
    lp, lens = model.eval()(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
    assert lp.shape[-1] == len(tok)


@pytest.mark.parametrize("group, option", OPTIONS)
def test_every_group_option(group, option):
    cfg = to_dataclass(compose([f"{group}={option}"]))
    check_ranges(cfg)
    tok = CharTokenizer()
    if group == "decoder":
        if cfg.decoder.lm:  # an LM file named in a shipped config must exist or be built by a recipe
            pytest.skip("decoder config names an LM file built by a recipe")
        assert hasattr(build_decoder(cfg.decoder, tok), "decode")
    else:
        assert build_model(cfg, tok).num_params() > 0


@pytest.mark.parametrize("override, key", [
    ("model.hiden=3", "hiden"), ("model.hidden=abc", "hidden"), ("nokey=1", "nokey"), ("model=nope", "model/nope"),
])
def test_bad_overrides_name_the_key(override, key):
    with pytest.raises(UserError, match=key):
        compose([override])


@pytest.mark.parametrize("overrides, message", [
    (["model.layers=0"], r"model.layers=0: must be > 0"),
    (["model.dropout=1.5", "optim.lr=-1"], r"model.dropout=1.5: must be in \[0, 1\); optim.lr=-1.0: must be > 0"),
    (["optim.epochs=0"], r"optim.epochs=0: must be >= 1"),
    (["data.max_frames=0"], r"data.max_frames=0: must be > 0"),
    (["data.min_duration=5", "data.max_duration=2"], r"data.min_duration=5.0 is not below data.max_duration=2.0"),
    (["threads=-1"], r"threads=-1: must be >= 0"),
    (["model.subsampling=5"], r"model.subsampling=5: expected 2, 3, 4 or 6 \(feature frames per output frame\)"),
    (["data.batch_multiple=0", "data.max_utts=-1"], r"data.batch_multiple=0: must be >= 1; data.max_utts=-1: must be"),
    (["data.batch_multiple=8", "data.max_utts=100"], r"data.max_utts=100 is not a multiple of data.batch_multiple=8"),
    (["specaug.echo_prob=2", "specaug.echo_min_db=-3", "specaug.echo_max_db=-10", "specaug.eq_points=1"],
     r"specaug.echo_prob=2.0: must be in \[0, 1\]; specaug.eq_points=1: must be >= 2; "
     r"specaug.echo_min_ms/echo_max_ms=30.0/250.0, echo_min_db/echo_max_db=-3.0/-10.0: "
     r"each pair must be \[lowest, highest\]"),
    (["precision=fp8", "model.rnn_impl=foo"],
     r"precision=fp8: expected auto, fp32, bf16 or fp16; model.rnn_impl=foo: expected auto, packed, flip or full"),
    (["specaug.freq_warp_axis=bark"], r"specaug.freq_warp_axis=bark: expected mel or hz"),
])
def test_values_out_of_range_are_named_before_work(overrides, message, tmp_path):
    """Values that type-check but cannot work (a layer count of 0, a negative learning rate) stop train() in
    one line naming each, before it reads a manifest or writes the run directory."""
    from asr.train import train

    run = tmp_path / "run"
    with pytest.raises(UserError, match=message):
        train(compose(overrides + [f"run_dir={run}", "data.train_manifest=missing.jsonl"]))
    assert not run.exists()


@pytest.mark.parametrize("name, message", [
    ("tpu", "expected auto, cpu, cuda or cuda:N"), ("cuda:x", "expected auto, cpu, cuda or cuda:N"),
    ("meta", "expected auto, cpu, cuda or cuda:N"),
    ("cuda:64", "no CUDA GPU is available here" if not torch.cuda.is_available() else "this machine has"),
])
def test_device_names_are_checked(name, message):
    from asr.dist import pick_device

    with pytest.raises(UserError, match=message):
        pick_device(name)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_device_errors_reach_every_command(tiny_model, digit_manifests, capsys, tmp_path):
    """asr train, eval and transcribe all say it in one line (exit 2) when the device is not there."""
    from asr.cli import main

    bad = "tpu"
    assert main(["eval", "--model", str(tiny_model), "--manifest", str(digit_manifests[1]), "--device", bad]) == 2
    assert main(["transcribe", "--model", str(tiny_model), "--device", bad, str(tiny_model)]) == 2
    assert main(["train", f"device={bad}", f"run_dir={tmp_path / 'run'}", f"data.train_manifest={digit_manifests[0]}",
                 f"data.dev_manifest={digit_manifests[1]}"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: device 'tpu': expected auto, cpu, cuda or cuda:N") == 3 and "Traceback" not in err
