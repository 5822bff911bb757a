import pytest
import torch

from asr.config import FeatureConfig, ModelConfig, SpecAugmentConfig
from asr.decode import GreedyDecoder
from asr.model import BiLSTMCTC, conv_out_lengths
from asr.text import CharTokenizer


def make_model(**kw):
    torch.manual_seed(0)
    kw = {"conv_channels": 4, "hidden": 16, "layers": 2, "dropout": 0.0, **kw}
    return BiLSTMCTC(ModelConfig(**kw), FeatureConfig(), SpecAugmentConfig(), vocab_size=29).eval()


@pytest.mark.parametrize("subsampling", [2, 3, 4, 6])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 7, 8, 9, 100, 101])
def test_conv_length_arithmetic_matches_real_output(T, subsampling):
    model = make_model(subsampling=subsampling)
    log_probs, lengths = model(torch.randn(1, T, 80), torch.tensor([T]))
    assert log_probs.shape[1] == int(lengths[0]) == int(conv_out_lengths(torch.tensor([T]), subsampling)[0])
    assert int(lengths[0]) == -(-T // subsampling)  # ceil(T / subsampling)


def test_subsampling_choices_are_the_conv_strides():
    """The config's choices of model.subsampling are the model's, and each is the product of its two strides."""
    from asr.config import SUBSAMPLINGS
    from asr.model import TIME_STRIDES

    assert tuple(TIME_STRIDES) == SUBSAMPLINGS
    assert all(a * b == s for s, (a, b) in TIME_STRIDES.items())


def test_log_probs_normalized():
    model = make_model()
    lp, _ = model(torch.randn(2, 50, 80), torch.tensor([50, 30]))
    assert lp.shape == (2, 13, 29)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2, 13), atol=1e-5)


@pytest.mark.parametrize("cmn,subsampling", [(False, 4), (True, 4), (False, 3)])
@pytest.mark.parametrize("short", [40, 37, 90, 99])
def test_padding_does_not_change_outputs(cmn, subsampling, short):
    """An utterance decodes the same alone or padded in a batch, whatever its length modulo 4 (or 3)."""
    model = make_model(utterance_cmn=cmn, subsampling=subsampling)
    model.norm.set_stats(torch.full((80,), 0.5), torch.full((80,), 2.0))  # padding is nonzero once normalized
    a, b = torch.randn(1, short, 80), torch.randn(1, 100, 80)
    batch = torch.zeros(2, 100, 80)
    batch[0, :short], batch[1] = a[0], b[0]
    lp_batch, lens = model(batch, torch.tensor([short, 100]))
    lp_a, _ = model(a, torch.tensor([short]))
    n = -(-short // subsampling)
    assert int(lens[0]) == n == lp_a.shape[1]
    assert torch.allclose(lp_batch[0, :n], lp_a[0], atol=1e-5)


def test_ctc_loss_finite_and_backprop():
    model = make_model().train()
    tok = CharTokenizer()
    feats = torch.randn(3, 120, 80)
    lengths = torch.tensor([120, 90, 60])
    texts = ["hello world", "ctc", "a b"]
    targets = torch.cat([torch.tensor(tok.encode(t)) for t in texts])
    tlens = torch.tensor([len(t) for t in texts])
    lp, olens = model(feats, lengths)
    loss = torch.nn.functional.ctc_loss(lp.transpose(0, 1), targets, olens, tlens, reduction="sum")
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_greedy_decoding_hand_made():
    tok = CharTokenizer()
    # frames: blank c c blank a a t blank blank (space) ... padded frames must be ignored
    seq = ["<blank>", "c", "c", "<blank>", "a", "a", "t", " ", "t", "<blank>", "t", "o", "<blank>"]
    ids = [tok.tokens.index(s) for s in seq]
    lp = torch.full((1, len(ids) + 3, len(tok)), -10.0)
    for t, i in enumerate(ids):
        lp[0, t, i] = -0.01
    lp[0, len(ids):, tok.tokens.index("z")] = 0.0  # padding: must not be decoded
    hyp = GreedyDecoder(tok).decode(lp, torch.tensor([len(ids)]))[0]
    assert hyp.text == "cat tto"
    assert hyp.frames == [1, 4, 6, 7, 8, 10, 11]
    assert hyp.score == pytest.approx(-0.01 * len(ids))


@pytest.mark.parametrize("residual", [False, True])
def test_unpadded_batch_takes_the_plain_kernel_with_the_same_output(monkeypatch, residual):
    model = make_model(residual=residual)
    feats, lengths = torch.randn(2, 57, 80), torch.tensor([57, 57])
    model.cfg.rnn_impl = "flip"
    flip, _ = model(feats, lengths)
    model.cfg.rnn_impl = "auto"
    calls = []
    monkeypatch.setattr(model, "_flip_lstm", lambda *a: calls.append(a))  # must not be used
    auto, _ = model(feats, lengths)
    assert not calls and torch.allclose(flip, auto, atol=1e-6)


@pytest.mark.parametrize("residual", [False, True])
def test_flip_and_packed_lstm_agree(residual):
    """The padded two-pass implementation equals cuDNN-style packed sequences, outputs and gradients."""
    model = make_model(residual=residual, layers=3)
    feats, lengths = torch.randn(3, 90, 80), torch.tensor([90, 61, 17])
    out = {}
    for impl in ("packed", "flip"):
        model.cfg.rnn_impl = impl
        model.zero_grad()
        lp, lens = model(feats, lengths)
        lp[:, :, 1].sum().backward()
        out[impl] = (lp.detach(), [p.grad.clone() for p in model.lstm.parameters()])
    for b, n in enumerate(conv_out_lengths(lengths).tolist()):
        assert torch.allclose(out["packed"][0][b, :n], out["flip"][0][b, :n], atol=1e-5)
    for g1, g2 in zip(out["packed"][1], out["flip"][1]):
        assert torch.allclose(g1, g2, atol=1e-4)


def test_ctc_min_frames_is_exactly_feasibility():
    """An utterance with ctc_min_frames(ids) frames has a finite CTC loss; one frame fewer is infinite."""
    from asr.align import ctc_min_frames

    tok = CharTokenizer()
    for text in ["hello", "aaa", "book keeper", "ab"]:
        ids = tok.encode(text)
        need = ctc_min_frames(ids)
        for frames, finite in ((need, True), (need - 1, False)):
            lp = torch.randn(frames, 1, len(tok)).log_softmax(-1)
            loss = torch.nn.functional.ctc_loss(lp, torch.tensor([ids]), torch.tensor([frames]),
                                                torch.tensor([len(ids)]))
            assert bool(torch.isfinite(loss)) == finite, (text, frames)


def test_utterance_cmn_removes_a_constant_per_bin_offset():
    """With per-utterance mean normalization, a fixed spectral tilt added to one utterance changes nothing."""
    model = make_model(utterance_cmn=True)
    x = torch.randn(1, 60, 80)
    tilt = torch.linspace(-3, 3, 80)  # per-bin offset, like a different microphone or voice
    a, _ = model(x, torch.tensor([60]))
    b, _ = model(x + tilt, torch.tensor([60]))
    assert torch.allclose(a, b, atol=1e-4)
    c, _ = make_model(utterance_cmn=False)(x + tilt, torch.tensor([60]))
    assert not torch.allclose(a, c, atol=1e-2)


def test_forget_bias_initialization():
    model = make_model(forget_bias=1.0)
    h = model.cfg.hidden
    for layer in range(model.cfg.layers):
        for suffix in ("", "_reverse"):
            total = getattr(model.lstm, f"bias_ih_l{layer}{suffix}") + getattr(model.lstm, f"bias_hh_l{layer}{suffix}")
            assert torch.allclose(total[h: 2 * h], torch.ones(h))
            assert not torch.allclose(total[:h], torch.ones(h))  # the other gates keep their random init


@pytest.mark.parametrize("impl", ["flip", "packed", "full"])
def test_residual_adds_each_upper_layers_input_to_its_output(impl):
    """model.residual: layer k >= 2 outputs LSTM_k(x) + x, the same weights as the plain stack; layer 1 (H -> 2H)
    has none. Checked against nn.LSTM's own single layers run one after the other."""
    model = make_model(residual=True, layers=3, rnn_impl=impl)
    x = torch.randn(2, 20, 16)  # (B, T', H): the conv front's output
    lengths = torch.tensor([20, 20])
    y = model._full_lstm(x) if impl == "full" else (
        model._flip_lstm(x, lengths) if impl == "flip" else model._packed_lstm(x, lengths))
    expect = x
    for layer in range(3):
        one = torch.nn.LSTM(16 if layer == 0 else 32, 16, bidirectional=True, batch_first=True)
        for name, _ in one.named_parameters():  # weight_ih_l0(_reverse) <- the stack's layer's
            getattr(one, name).data = getattr(model.lstm, name.replace("_l0", f"_l{layer}")).data
        out = one(expect)[0]
        expect = out + expect if layer else out
    assert torch.allclose(y, expect, atol=1e-5)
    plain = make_model(residual=False, layers=3, rnn_impl=impl)
    assert not torch.allclose(plain._full_lstm(x), y, atol=1e-2)  # the same weights, another function
