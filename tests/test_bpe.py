"""BPE units (sentencepiece): training, round trips, checkpoints loading with weights_only, a training smoke run."""

import io
import pickle

import pytest
import torch

pytest.importorskip("sentencepiece", reason="the bpe extra is not installed (pip install -e '.[bpe]')")

from asr.checkpoint import (  # noqa: E402
    build_model, keep_epoch_checkpoint, load_checkpoint, load_model, model_state, save_checkpoint,
)
from asr.cli import main  # noqa: E402
from asr.config import TrainConfig, compose, to_dataclass  # noqa: E402
from asr.data import UtteranceDataset  # noqa: E402
from asr.decode import GreedyDecoder  # noqa: E402
from asr.evaluate import evaluate  # noqa: E402
from asr.features import LogMel  # noqa: E402
from asr.manifest import read_manifest  # noqa: E402
from asr.text import BLANK, BPETokenizer, CharTokenizer, build_tokenizer, tokenizer_from_dict, train_bpe  # noqa: E402
from conftest import tiny_overrides  # noqa: E402

SENTENCES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "on the mat the cat sat",
             "that is the dog's log"]


@pytest.fixture(scope="module")
def bpe(tmp_path_factory) -> BPETokenizer:
    return train_bpe(SENTENCES * 4, 48, tmp_path_factory.mktemp("bpe") / "bpe.model")


def test_round_trip_and_blank(bpe):
    assert bpe.tokens[0] == BLANK and bpe.blank == 0 and len(bpe) == len(bpe.tokens)
    for text in [*SENTENCES, "the zebra's quiz", "x"]:  # letters unseen in training still have a piece
        ids = bpe.encode(text)
        assert ids and all(0 < i < len(bpe) for i in ids)
        assert bpe.decode(ids) == text
    assert len(bpe.encode("the cat sat")) < len("the cat sat"), "pieces are longer than characters"
    assert bpe.decode([0, *bpe.encode("the dog"), 0]) == "the dog", "blanks are dropped"


def test_unknown_character_is_named(bpe):
    with pytest.raises(KeyError, match="7"):
        bpe.encode("cat 7")


def test_model_file_written_and_reloaded(bpe, tmp_path):
    out = tmp_path / "m.model"
    train_bpe(SENTENCES, 40, out)
    assert BPETokenizer.load(out).tokens == BPETokenizer(out.read_bytes()).tokens


def test_dict_survives_weights_only_load_and_pickle(bpe):
    buf = io.BytesIO()
    torch.save({"tokenizer": bpe.to_dict()}, buf)
    buf.seek(0)
    d = torch.load(buf, weights_only=True)["tokenizer"]
    assert d["model"].dtype == torch.uint8
    back = tokenizer_from_dict(d)
    assert isinstance(back, BPETokenizer) and back.tokens == bpe.tokens
    assert back.encode("the dog sat") == bpe.encode("the dog sat")
    assert pickle.loads(pickle.dumps(bpe)).encode("a cat") == bpe.encode("a cat")  # DataLoader workers
    assert isinstance(tokenizer_from_dict(CharTokenizer().to_dict()), CharTokenizer)
    with pytest.raises(ValueError, match="unknown tokenizer type"):
        tokenizer_from_dict({"type": "words"})


def test_checkpoint_with_bpe_loads_and_decodes_the_same(bpe, tmp_path):
    cfg = to_dataclass(compose(["model=tiny", "tokenizer=bpe"]))
    torch.manual_seed(0)
    model = build_model(cfg, bpe).eval()
    save_checkpoint(tmp_path / "m.pt", model_state(model, cfg, bpe))
    loaded, tok, _ = load_model(tmp_path / "m.pt")
    assert isinstance(tok, BPETokenizer) and tok.tokens == bpe.tokens
    feats, lengths = torch.randn(2, 300, cfg.features.n_mels), torch.tensor([300, 200])
    with torch.no_grad():
        a = GreedyDecoder(bpe).decode(*model(feats, lengths))
        b = GreedyDecoder(tok).decode(*loaded(feats, lengths))
    assert [h.text for h in a] == [h.text for h in b] and [h.tokens for h in a] == [h.tokens for h in b]
    assert all(h.text == " ".join(h.text.split()) for h in a), "pieces decode to words with single spaces"


def test_build_tokenizer_trains_once_then_reuses(tmp_path):
    cfg = TrainConfig(run_dir=str(tmp_path / "run"))
    assert isinstance(build_tokenizer(cfg), CharTokenizer)
    cfg.tokenizer.type, cfg.tokenizer.vocab_size = "bpe", 40
    tok = build_tokenizer(cfg, SENTENCES)
    model_file = tmp_path / "run" / "bpe.model"
    assert model_file.is_file()
    before = model_file.stat().st_mtime_ns
    assert build_tokenizer(cfg, ["other text entirely"]).tokens == tok.tokens  # reused, not retrained
    assert model_file.stat().st_mtime_ns == before
    cfg.tokenizer.model = str(tmp_path / "named.model")  # an explicit path is trained into when absent
    build_tokenizer(cfg, SENTENCES)
    assert (tmp_path / "named.model").is_file()


@pytest.mark.slow  # ~12 s on 2 idle CPU cores
def test_bpe_training_smoke_and_checkpoint_average(digit_manifests, tmp_path, capsys):
    """tokenizer=bpe trains end to end; keep_epochs keeps per-epoch weights; `asr average` makes a loadable model;
    resuming takes the tokenizer from the checkpoint."""
    run = tmp_path / "run"
    overrides = tiny_overrides(run, *digit_manifests, epochs=2) + ["tokenizer=bpe", "tokenizer.vocab_size=40",
                                                                    "keep_epochs=2"]
    from asr.train import train

    train(compose(overrides))
    assert (run / "bpe.model").is_file()
    assert sorted(p.name for p in run.glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-2.pt"]
    e1, e2 = load_checkpoint(run / "epoch-1.pt"), load_checkpoint(run / "epoch-2.pt")
    assert "optimizer" not in e2 and e2["epoch"] == 2
    model, tok, cfg = load_model(run / "best.pt")
    assert isinstance(tok, BPETokenizer) and len(tok) <= 41
    ds = UtteranceDataset(read_manifest(digit_manifests[1])[:8], LogMel(cfg.features), tok)
    result = evaluate(model, ds, GreedyDecoder(tok), torch.device("cpu"))
    assert result.loss == result.loss and len(result.rows) == 8
    assert all(set(r["hyp"]) <= set("abcdefghijklmnopqrstuvwxyz' ") for r in result.rows)

    # `asr eval --lm` runs on a BPE model (the LM's words spelled in its pieces; this barely trained model's
    # hypotheses are mostly empty, so what comes out is tested in test_beam.py on hand-made log-probs)
    pytest.importorskip("flashlight.lib.text.decoder")
    from asr.lm import build_lm

    (tmp_path / "lm.txt").write_text("".join(u.text + "\n" for u in read_manifest(digit_manifests[0])))
    lm = build_lm(tmp_path / "lm.txt", 2, tmp_path / "lm.arpa", backend="python").path
    capsys.readouterr()
    assert main(["eval", "--model", str(run / "best.pt"), "--manifest", str(digit_manifests[1]), "--lm", str(lm),
                 "--report", str(tmp_path / "beam.jsonl")]) == 0
    assert capsys.readouterr().out.startswith("WER ")
    assert len((tmp_path / "beam.jsonl").read_text().splitlines()) == len(read_manifest(digit_manifests[1]))

    assert main(["average", "--run-dir", str(run), "--last", "2"]) == 0
    avg_model, avg_tok, _ = load_model(run / "avg.pt")
    assert avg_tok.tokens == tok.tokens
    for k, v in avg_model.state_dict().items():
        assert torch.allclose(v, (e1["model"][k].double() + e2["model"][k].double()).div(2).to(v.dtype)), k

    # A resumed run keeps the checkpoint's tokenizer even if the config now says char.
    resumed = to_dataclass(compose(overrides[:-3] + ["tokenizer=char"]))
    assert build_tokenizer(resumed).tokens == tok.tokens
    assert "ignored while resuming" in capsys.readouterr().err


def test_keep_epoch_checkpoint_deletes_older(tmp_path):
    for epoch in range(1, 6):
        keep_epoch_checkpoint(tmp_path, epoch, {"model": {"w": torch.ones(2) * epoch}, "config": {}}, keep=3)
    assert sorted(p.name for p in tmp_path.glob("epoch-*.pt")) == ["epoch-3.pt", "epoch-4.pt", "epoch-5.pt"]


def test_word_timestamps_with_bpe_pieces(bpe):
    """Word alignment groups pieces into words at the "\u2581" mark (BPE has no " " token)."""
    from asr.align import align_words

    ids = bpe.encode("the cat sat")
    lp = torch.full((40, len(bpe)), -10.0)
    lp[:, 0] = 0.0
    frames = [3 + 4 * k for k in range(len(ids))]
    for f, i in zip(frames, ids):  # one sharp spike per piece, blank elsewhere
        lp[f, i], lp[f, 0] = 0.0, -10.0
    lp = lp.log_softmax(-1)
    hyp = GreedyDecoder(bpe).decode(lp[None], torch.tensor([40]))[0]
    assert hyp.text == "the cat sat"
    words = align_words(lp, hyp, bpe, frame_s=0.04)
    assert [w["word"] for w in words] == ["the", "cat", "sat"]
    assert words[0]["start"] == pytest.approx(frames[0] * 0.04)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:])) and all(w["confidence"] > 0.9 for w in words)


def test_smallest_vocabulary_trains_and_one_less_is_a_user_error(tmp_path):
    from asr.errors import UserError

    tok = train_bpe(SENTENCES, 29, tmp_path / "29.model")  # every letter, the apostrophe, the word marker, <unk>
    assert tok.decode(tok.encode("the zebra's quiz")) == "the zebra's quiz"
    with pytest.raises(UserError, match="vocab_size=28: need at least 29"):
        train_bpe(SENTENCES, 28, tmp_path / "28.model")
    assert not (tmp_path / "28.model").exists()
