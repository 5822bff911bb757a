"""The acoustic model: normalization -> SpecAugment -> conv front (/4 or /3 frames) -> BiLSTM stack -> linear."""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from asr.config import FeatureConfig, ModelConfig, SpecAugmentConfig
from asr.features import GlobalNorm, SpecAugment, zero_padding

TIME_STRIDES = {2: (2, 1), 3: (3, 1), 4: (2, 2), 6: (3, 2)}  # model.subsampling -> each conv's stride over time


def conv_out_lengths(lengths: torch.Tensor, subsampling: int = 4, convs: int = 2) -> torch.Tensor:
    """Frames after the conv front (or its first ``convs`` convs): a 3-wide pad-1 conv of time stride s maps
    L -> (L - 1) // s + 1."""
    for stride in TIME_STRIDES[subsampling][:convs]:
        lengths = torch.div(lengths - 1, stride, rounding_mode="floor") + 1
    return lengths


class ConvFront(nn.Module):
    """Two 3x3 convolutions over (time, mel), stride 2 over mel bins and ``TIME_STRIDES[subsampling]`` over time
    (4x fewer frames by default), then a projection.

    Frames past each utterance's length are zeroed before each convolution, so an
    utterance gives the same output alone or padded in a batch (a conv's bias would
    otherwise leak into the last frame of utterances of some lengths).
    """

    def __init__(self, n_mels: int, channels: int, out_dim: int, subsampling: int = 4):
        super().__init__()
        self.subsampling = subsampling
        first, second = TIME_STRIDES[subsampling]
        self.conv = nn.Sequential(  # kept as one Sequential: checkpoint keys conv.0 and conv.2
            nn.Conv2d(1, channels, 3, stride=(first, 2), padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=(second, 2), padding=1),
            nn.GELU(),
        )
        freq = (n_mels - 1) // 2 + 1
        freq = (freq - 1) // 2 + 1  # 80 mel bins -> 20
        self.proj = nn.Linear(channels * freq, out_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = zero_padding(x.unsqueeze(1), lengths, time_dim=2)  # (B, T, F) -> (B, 1, T, F)
        x = self.conv[1](self.conv[0](x))  # (B, C, T/s1, F/2), (s1, s2) = TIME_STRIDES[subsampling]: (2, 2) or (3, 1)
        x = zero_padding(x, conv_out_lengths(lengths, self.subsampling, convs=1), time_dim=2)
        x = self.conv[3](self.conv[2](x))  # (B, C, T/(s1*s2), F/4): T/4 or T/3
        b, c, t, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, t, c * f)  # (B, C, T', F') -> (B, T', C*F')
        return self.proj(x)  # (B, T', out_dim)


class BiLSTMCTC(nn.Module):
    def __init__(self, cfg: ModelConfig, features: FeatureConfig, specaug: SpecAugmentConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.norm = GlobalNorm(features.n_mels)
        self.specaug = SpecAugment(specaug, features)
        self.front = ConvFront(features.n_mels, cfg.conv_channels, cfg.hidden, cfg.subsampling)
        self.lstm = nn.LSTM(
            cfg.hidden, cfg.hidden, num_layers=cfg.layers, bidirectional=True, batch_first=True, dropout=cfg.dropout
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * cfg.hidden, vocab_size)
        if cfg.forget_bias:
            with torch.no_grad():
                for name, p in self.lstm.named_parameters():
                    if name.startswith("bias_"):  # gates stacked (input, forget, cell, output): (4H,)
                        p[cfg.hidden: 2 * cfg.hidden] = cfg.forget_bias / 2  # ih + hh add up to forget_bias

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, n_mels) log-mel, (B,) frame counts -> (B, T', V) log-probs, (B,) output frame counts."""
        x = self.norm(self.specaug.raw(feats, lengths))
        if self.cfg.utterance_cmn:
            x = _utterance_cmn(x, lengths)
        x = self.front(self.specaug(x), lengths.to(x.device))  # (B, T', H)
        out_lengths = conv_out_lengths(lengths, self.cfg.subsampling)
        impl = self.cfg.rnn_impl
        if impl == "auto":
            impl = "flip" if not x.is_cuda or self._cudnn_persistent(x) else "packed"
            if not torch.jit.is_tracing() and bool((out_lengths == x.shape[1]).all()):
                impl = "full"  # no padding (one file, one window): the plain bidirectional kernel, 5-10 % faster
        if impl == "full":
            y = self._full_lstm(x)  # (B, T', 2H)
        else:
            y = self._flip_lstm(x, out_lengths) if impl == "flip" else self._packed_lstm(x, out_lengths)
        logits = self.out(self.dropout(y))  # (B, T', 2H) -> (B, T', V)
        return logits.float().log_softmax(-1), out_lengths

    def _cudnn_persistent(self, x: torch.Tensor) -> bool:
        """Whether cuDNN runs flip's layers (one direction each, unpacked) as its persistent LSTM kernel: the whole
        sequence in one launch instead of a few per time step. PyTorch asks for it (``get_algo`` in
        aten/src/ATen/native/cudnn/RNN.cpp) for fp16 input (any autocast on a GPU: cuDNN's LSTM then runs in fp16),
        128-multiple sizes up to 1024, a multiple of 8 utterances up to 128 (``data.batch_multiple``,
        ``data.max_utts``), on compute capability 8.0/8.9/9.x+ with at least 98 SMs (A100, H100, H200).
        Measured on an H100 (benchmarks/README.md): a 100k-frame step 2.1x as fast as on the batches uncut."""
        b = x.shape[0]
        if not (torch.is_autocast_enabled("cuda") and b % 8 == 0 and b <= 128 and self.cfg.hidden % 128 == 0
                and self.cfg.hidden <= 1024):
            return False
        props = torch.cuda.get_device_properties(x.device)
        return props.major >= 8 and props.minor != 6 and props.multi_processor_count >= 98

    def _params(self, layer: int) -> list[torch.Tensor]:
        """One layer's weights as torch.lstm takes them: (w_ih, w_hh, b_ih, b_hh), forward then backward direction."""
        return [getattr(self.lstm, f"{name}_l{layer}{suffix}") for suffix in ("", "_reverse")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def _layer_by_layer(self, x: torch.Tensor, run_layer) -> torch.Tensor:
        """The stack one layer at a time: ``run_layer(input, weights of both directions)`` -> the layer's output;
        dropout before every layer but the first, and with ``model.residual`` each layer's input added to its
        output from the second layer on (both 2H wide)."""
        for layer in range(self.cfg.layers):
            inp = nn.functional.dropout(x, self.cfg.dropout, self.training) if layer else x
            with _own_weight_layout():
                y = run_layer(inp, self._params(layer))
            x = y + x if self.cfg.residual and layer else y
        return x

    def _full_lstm(self, x: torch.Tensor) -> torch.Tensor:
        """The bidirectional LSTM over unpadded input: the whole stack in one call, or layer by layer when each
        layer's input is added to its output (``model.residual``)."""
        if not self.cfg.residual:
            return self.lstm(x)[0]
        h0 = x.new_zeros(2, x.shape[0], self.cfg.hidden)  # (directions, B, H)
        return self._layer_by_layer(x, lambda inp, params: torch.lstm(
            inp, (h0, h0), params, True, 1, 0.0, self.training, True, True)[0])  # (B, T', 2H)

    def _packed_lstm(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """cuDNN's bidirectional LSTM on packed sequences: the backward direction never reads padding."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        if self.cfg.residual:  # layer by layer, on the packed frames: (sum of lengths, H), then (..., 2H)
            h0 = x.new_zeros(2, x.shape[0], self.cfg.hidden)
            data = self._layer_by_layer(packed.data, lambda inp, params: torch.lstm(
                inp, packed.batch_sizes, (h0, h0), params, True, 1, 0.0, self.training, True)[0])
            packed = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        else:
            packed, _ = self.lstm(packed)
        y, _ = pad_packed_sequence(packed, batch_first=True, total_length=x.shape[1])  # (B, T', 2H)
        return y

    def _flip_lstm(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The same bidirectional LSTM (same weights) as two unidirectional passes over padded tensors.

        The backward pass reads each utterance reversed within its own length, so padding
        comes last in both directions and never reaches a valid output: exactly the packed
        result. Padded input takes the CPU's oneDNN LSTM kernels, about 2x faster than packed.
        """
        b, t, _ = x.shape
        steps = torch.arange(t, device=x.device).expand(b, t)  # (B, T')
        valid = steps < lengths.to(x.device).unsqueeze(1)
        rev = torch.where(valid, lengths.to(x.device).unsqueeze(1) - 1 - steps, steps)  # per-utterance reversal
        h0 = x.new_zeros(1, b, self.cfg.hidden)

        def run_layer(inp: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
            outs = []
            for weights, order in ((params[:4], None), (params[4:], rev)):  # forward, then backward direction
                src = inp if order is None else _gather_time(inp, order)
                y = torch.lstm(src, (h0, h0), weights, True, 1, 0.0, self.training, False, True)[0]  # (B, T', H)
                outs.append(y if order is None else _gather_time(y, order))
            return torch.cat(outs, dim=-1)  # (B, T', 2H)

        return self._layer_by_layer(x, run_layer) * valid.unsqueeze(-1)  # padded frames zero, as packed's are

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@contextlib.contextmanager
def _own_weight_layout():
    """Quiet the warning of a torch.lstm call on some of an nn.LSTM's weights: cuDNN copies them into its own
    layout per call (a few MB; measured on an H100: flip as fast as packed) and warns each time that it does so."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
        yield


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, t]] for every (b, t): (B, T, H) -> (B, T, H)."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _utterance_cmn(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Subtract each utterance's per-bin mean over its valid frames; padding stays zero."""
    lengths = lengths.to(x.device)
    mean = zero_padding(x, lengths, time_dim=1).sum(1, keepdim=True) / lengths.clamp_min(1).view(-1, 1, 1)  # (B, 1, F)
    return zero_padding(x - mean, lengths, time_dim=1)
