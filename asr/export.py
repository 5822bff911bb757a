"""Export the acoustic model to TorchScript or ONNX, and load the exported file for transcription.

What is exported: log-mel features ``(B, T, n_mels)`` float32 and frame counts ``(B,)``
int64 -> CTC log-probs ``(B, T', V)`` and output frame counts ``(B,)``, ``T' = ceil(T / model.subsampling)``.
The global mean/variance normalization is inside the exported graph; the log-mel front
end (``asr.features.LogMel``: torchaudio STFT and mel filters) is not, and stays in
Python: compute the features with it (or an exact re-implementation) before calling
the exported model. Batch and time are dynamic.

The bidirectional LSTM is exported in its ``flip`` form (``ModelConfig.rnn_impl``):
two unidirectional passes over padded tensors with per-utterance time reversal, the
same weights and exactly the packed result; packed sequences do not trace or export.

The file carries what a recognizer needs besides the weights, as JSON: the feature
and model config and the tokenizer (ONNX ``metadata_props["asr"]``, TorchScript extra
file ``asr.json``), so ``Recognizer("model.onnx")`` works like a checkpoint.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import warnings
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import torch

from asr.checkpoint import load_model
from asr.config import FeatureConfig, ModelConfig, TrainConfig
from asr.errors import UserError
from asr.io import atomic_write_bytes
from asr.model import BiLSTMCTC
from asr.text import Tokenizer, tokenizer_from_dict

FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 17  # LSTM, Gather and Where are all in opset 14+; 17 is what onnxruntime >= 1.14 runs fully
META_KEY = "asr"  # ONNX metadata_props key and (".json") TorchScript extra file holding config and tokenizer


@contextmanager
def _quiet():
    """Silence the warnings exporting always gives here: the deprecation notices of TorchScript and of the
    TorchScript-based ONNX exporter (both still work in torch 2.14; the new dynamo exporter needs onnxscript),
    and the ONNX LSTM batch-size notice (the initial states are built from the input's batch size, and the
    tests run other batch sizes)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*batch_size other than 1.*LSTM", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
        yield


def exportable(model: BiLSTMCTC) -> BiLSTMCTC:
    """A copy in eval mode that runs the flip LSTM, whatever the checkpoint's rnn_impl."""
    m = copy.deepcopy(model).cpu().eval()
    m.cfg = replace(m.cfg, rnn_impl="flip")
    return m


def example_inputs(n_mels: int, lengths: tuple[int, ...] = (160, 117)) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features of a padded batch of utterances with ``lengths`` frames."""
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(len(lengths), max(lengths), n_mels, generator=g) * 2 - 8  # (B, T, n_mels), log-mel-like
    return feats, torch.tensor(lengths)


def _meta(cfg: TrainConfig, tokenizer: Tokenizer) -> str:
    tok = tokenizer.to_dict()
    if isinstance(tok.get("model"), torch.Tensor):  # a BPE tokenizer's sentencepiece model, bytes as uint8
        tok["model"] = base64.b64encode(tok["model"].numpy().tobytes()).decode("ascii")
    return json.dumps({"features": asdict(cfg.features), "model": asdict(cfg.model), "tokenizer": tok,
                       "inputs": "features (B, T, n_mels) float32 log-mel from asr.features.LogMel; lengths (B,) int64",
                       "outputs": "log_probs (B, T', V) float32; out_lengths (B,) int64"})


def export_torchscript(model: BiLSTMCTC, cfg: TrainConfig, tokenizer: Tokenizer) -> bytes:
    m = exportable(model)
    with torch.no_grad(), _quiet():
        traced = torch.jit.trace(m, example_inputs(cfg.features.n_mels), check_trace=False)
    buf = io.BytesIO()
    with _quiet():
        torch.jit.save(traced, buf, _extra_files={META_KEY + ".json": _meta(cfg, tokenizer)})
    return buf.getvalue()


def export_onnx(model: BiLSTMCTC, cfg: TrainConfig, tokenizer: Tokenizer) -> bytes:
    """The TorchScript-based exporter (``dynamo=False``): it maps the LSTM to ONNX's LSTM op. The torch.export-based
    exporter, torch's default since 2.9, needs the onnxscript package, which this project does not install."""
    import onnx

    m = exportable(model)
    buf = io.BytesIO()
    with torch.no_grad(), _quiet():
        torch.onnx.export(m, example_inputs(cfg.features.n_mels), buf, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["features", "lengths"], output_names=["log_probs", "out_lengths"],
                          dynamic_axes={"features": {0: "batch", 1: "frames"}, "lengths": {0: "batch"},
                                        "log_probs": {0: "batch", 1: "out_frames"}, "out_lengths": {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    proto.metadata_props.add(key=META_KEY, value=_meta(cfg, tokenizer))
    return proto.SerializeToString()


def export(checkpoint: str | os.PathLike, fmt: str, out: str | os.PathLike) -> dict:
    """Write the exported model to ``out``; returns the max abs log-prob difference from PyTorch."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    model, tokenizer, cfg = load_model(checkpoint)
    try:
        data = (export_onnx if fmt == "onnx" else export_torchscript)(model, cfg, tokenizer)
    except ImportError as e:
        raise UserError(f"--format {fmt} needs {e.name}: pip install 'asr[export]'") from None
    atomic_write_bytes(out, data)
    exported, _, _ = load_exported(out)
    return {"path": str(out), "format": fmt, "max_abs_diff": max_abs_diff(model, exported, cfg.features.n_mels)}


@torch.no_grad()
def max_abs_diff(model: BiLSTMCTC, exported, n_mels: int, batches=((160, 117), (403,))) -> float:
    """Largest |log-prob difference| between the checkpoint and the export on valid frames of a few batches."""
    worst = 0.0
    for lengths in batches:
        feats, lens = example_inputs(n_mels, lengths)
        ref, ref_lens = exportable(model)(feats, lens)
        got, got_lens = exported(feats, lens)
        if not torch.equal(ref_lens, got_lens.to(ref_lens.dtype)):
            raise RuntimeError(f"exported model gives output lengths {got_lens.tolist()}, expected {ref_lens.tolist()}")
        for b, n in enumerate(ref_lens.tolist()):
            worst = max(worst, float((ref[b, :n] - got[b, :n]).abs().max()))
    return worst


class OnnxModel:
    """An exported ONNX model called like BiLSTMCTC: (feats, lengths) -> (log_probs, out_lengths) tensors."""

    def __init__(self, path: str | os.PathLike, threads: int = 0):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lp, n = self.session.run(None, {"features": feats.detach().cpu().float().numpy(),
                                        "lengths": lengths.detach().cpu().long().numpy()})
        return torch.from_numpy(lp), torch.from_numpy(n)


def load_exported(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """(model, tokenizer, TrainConfig) from an exported .onnx or TorchScript file (ONNX runs on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    try:
        if path.suffix == ".onnx":
            import onnx

            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
            model, meta = OnnxModel(path), props.get(META_KEY)
        else:
            extra = {META_KEY + ".json": ""}
            with _quiet():
                model = torch.jit.load(str(path), map_location=device, _extra_files=extra)
            meta = extra[META_KEY + ".json"]
    except ImportError as e:
        raise UserError(f"{path}: running an ONNX model needs {e.name}: pip install 'asr[export]'") from None
    except Exception as e:  # noqa: BLE001 - onnx, onnxruntime and torch.jit each raise their own types
        raise UserError(f"{path}: not a readable exported model ({str(e).splitlines()[0][:200]})") from None
    if not meta:
        raise UserError(f"{path}: no asr metadata in the file; export it with 'asr export'")
    d = json.loads(meta)
    cfg = TrainConfig(features=FeatureConfig(**d["features"]), model=ModelConfig(**d["model"]))
    tok = d["tokenizer"]
    if isinstance(tok.get("model"), str):
        tok["model"] = base64.b64decode(tok["model"])
    return model, tokenizer_from_dict(tok), cfg
