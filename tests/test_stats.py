"""`asr stats`: global feature statistics written once, checked against the run's feature settings when read."""

import json

import pytest
import torch

from asr.audio import load_audio
from asr.cli import main
from asr.config import FeatureConfig
from asr.corpus.librispeech import prepare_librispeech
from asr.errors import UserError
from asr.features import LogMel, RunningStats
from asr.manifest import read_manifest
from asr.stats import load_stats


def test_stats_match_the_features_and_guard_their_settings(librispeech_sample, tmp_path):
    manifest = prepare_librispeech(librispeech_sample, ["dev-clean"], tmp_path, progress=False)["dev-clean"]
    out = tmp_path / "dev.stats.json"
    assert main(["stats", "--manifest", str(manifest), "--out", str(out), "--jobs", "0"]) == 0
    d = json.loads(out.read_text())
    assert d["utterances"] == 3 and d["features"] == json.loads(json.dumps(FeatureConfig().__dict__))
    rs, logmel = RunningStats(80), LogMel(FeatureConfig())
    for u in read_manifest(manifest):
        rs.update(logmel(load_audio(u.audio, 16000)))
    mean, std = load_stats(out, FeatureConfig())
    assert d["frames"] == rs.count
    assert torch.allclose(mean, rs.mean_std()[0], atol=1e-4) and torch.allclose(std, rs.mean_std()[1], atol=1e-4)
    with pytest.raises(UserError, match="other feature settings"):
        load_stats(out, FeatureConfig(n_mels=40))
    with pytest.raises(UserError, match="asr stats"):
        load_stats(tmp_path / "absent.json", FeatureConfig())
