"""tools/tune_lm.py: the searches, the hints at the edge of a grid, and a run that writes a decoder YAML."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from asr.config import DecoderConfig

pytest.importorskip("flashlight.lib.text.decoder")

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tune_lm", REPO / "tools" / "tune_lm.py")
tune_lm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tune_lm)


class Bowl:
    """A stand-in for Trials: WER = a bowl with its minimum at ``at``; counts the points decoded."""

    def __init__(self, at: tuple[float, float]):
        self.at, self.results = at, {}

    def __call__(self, w: float, s: float) -> tuple[float, float]:
        wer = (w - self.at[0]) ** 2 + 0.1 * (s - self.at[1]) ** 2
        self.results[(w, s)] = (wer, wer, 0.0)
        return wer, wer

    best = tune_lm.Trials.best


WEIGHTS = [0, 0.25, 0.5, 0.75, 1, 1.5, 2]
SCORES = [-2, -1, 0, 1, 2, 3]


@pytest.mark.parametrize("at", [(1.5, -1), (0.25, 2), (2, 3)])
def test_coordinate_search_finds_the_grid_optimum_with_fewer_decodes(at):
    grid, coord = Bowl(at), Bowl(at)
    tune_lm.grid_search(grid, WEIGHTS, SCORES)
    tune_lm.coordinate_search(coord, WEIGHTS, SCORES)
    assert coord.best() == grid.best() == at
    assert len(coord.results) < len(grid.results) == len(WEIGHTS) * len(SCORES)


def test_edge_hints_name_the_list_to_widen():
    assert tune_lm.edge_hints((1.0, 0.0), WEIGHTS, SCORES) == []
    hints = tune_lm.edge_hints((2.0, -2.0), WEIGHTS, SCORES)
    assert len(hints) == 2 and "--lm-weights" in hints[0] and "largest" in hints[0]
    assert "--word-scores" in hints[1] and "smallest" in hints[1]
    assert tune_lm.edge_hints((0.0, 3.0), WEIGHTS, SCORES) == [
        "word_score 3 is the largest tried: the best may lie above it; add larger values to --word-scores"]
    assert tune_lm.edge_hints((2.0, 0.0), [2.0], [0.0]) == []  # a single value is a choice, not a search


def test_tune_lm_writes_a_decoder_yaml_of_the_best_point(tiny_model, digit_manifests, tmp_path, capsys):
    from asr.lm import build_lm

    rng = random.Random(0)
    words = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()
    (tmp_path / "text.txt").write_text("".join(" ".join(rng.choices(words, k=4)) + "\n" for _ in range(200)))
    lm = build_lm(tmp_path / "text.txt", 2, tmp_path / "lm.arpa", backend="python").path
    out = tmp_path / "tuned.yaml"
    assert tune_lm.main(["--model", str(tiny_model), "--manifest", str(digit_manifests[1]), "--lm", str(lm),
                         "--out", str(out), "--limit", "6", "--beam-size", "8", "--lm-weights", "0.5,1",
                         "--word-scores", "0,1", "--search", "grid"]) == 0
    printed = capsys.readouterr().out
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DecoderConfig), OmegaConf.load(out)))
    rows = [[float(x) for x in line[1:].split()] for line in out.read_text().splitlines()
            if line.startswith("#") and line[1:].split()[:1] and line[1:].split()[0].replace(".", "").isdigit()]
    points = {(w, s) for w, s, *_ in rows}
    assert points == {(0.0, 0.0)} | {(w, s) for w in (0.5, 1.0) for s in (0.0, 1.0)}  # no-LM point + 2 x 2 grid
    w, s, *_ = min(rows, key=lambda r: (r[2], r[3], r[0], abs(r[1])))  # lowest WER, then CER, then smaller weight
    assert (cfg.type, cfg.lm, cfg.lm_weight, cfg.word_score) == ("beam", str(lm), w, s)
    assert f"best: lm_weight {w} word_score {s}" in printed
