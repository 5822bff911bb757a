"""Configuration schema: dataclasses here, values in conf/*.yaml (Hydra).

``register_configs()`` stores the schema in Hydra's ConfigStore; the YAML files
in conf/ merge into it, so an unknown key or a wrong type fails at composition,
before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@dataclass
class FeatureConfig:
    sample_rate: int = 16000  # input audio rate, Hz
    n_mels: int = 80  # mel bins
    win_ms: float = 25.0  # analysis window, milliseconds
    hop_ms: float = 10.0  # frame shift, milliseconds
    n_fft: int = 512  # FFT size, samples (>= window: 400 samples at 16 kHz)
    f_min: float = 0.0  # lowest mel filter edge, Hz
    f_max: Optional[float] = None  # highest mel filter edge, Hz (None: sample_rate / 2)


@dataclass
class SpecAugmentConfig:
    freq_masks: int = 2  # frequency masks per utterance
    freq_width: int = 15  # widest frequency mask, mel bins
    time_masks: int = 2  # time masks per utterance
    time_width: int = 25  # widest time mask, frames (10 ms each)
    time_ratio: float = 0.1  # widest time mask as a fraction of the utterance
    freq_warp: float = 0.0  # widest frequency warp per utterance (VTLP-like), relative: 0.15 = x0.85..x1.15; 0: off
    freq_warp_prob: float = 1.0  # share of training utterances warped
    freq_warp_axis: str = "mel"  # mel: the mel axis stretched (at 0.8 the 7.7 kHz bin reads 4.2 kHz) | hz: frequency
    #                              scaled, as VTLP does (it reads 6.2 kHz): asr.features.freq_warp
    # Echo on the log-mels (asr.features.feature_echo): a share of the training utterances gets a decaying echo,
    # y(t) = x(t) + g x(t-d) + g^2 x(t-2d) + ... in mel power, d and g drawn per utterance; 0: off
    echo_prob: float = 0.0  # share of training utterances with an echo
    echo_min_ms: float = 30.0  # shortest echo delay, ms (rounded to feature frames)
    echo_max_ms: float = 250.0  # longest echo delay, ms
    echo_min_db: float = -15.0  # weakest echo, dB of power relative to the sound it repeats
    echo_max_db: float = -3.0  # strongest echo, dB
    # A random equalizer on the log-mels (asr.features.feature_eq): a smooth gain curve over the mel bins through
    # eq_points random gains of at most eq_db dB, as a microphone, a room or espeak-ng's ``tone`` setting colours
    # a voice; 0: off
    eq_prob: float = 0.0  # share of training utterances equalized
    eq_db: float = 8.0  # largest gain or cut, dB
    eq_points: int = 5  # random gains spread evenly over the mel bins, linear between them


@dataclass
class ModelConfig:
    conv_channels: int = 32  # channels of each of the two conv layers (stride 2 over mel bins)
    subsampling: int = 4  # feature frames per output frame: 4 (40 ms; the two convs stride 2 and 2 over time),
    #                       3 (30 ms; 3 and 1), 2 (20 ms; 2 and 1) or 6 (60 ms; 3 and 2). Character CTC needs an output
    #                       frame per letter and one between repeated letters: fast speech needs 3
    #                       (recipes/demo/README.md)
    hidden: int = 256  # LSTM units per direction
    layers: int = 3  # bidirectional LSTM layers
    dropout: float = 0.1  # dropout between LSTM layers and before the output layer, probability
    rnn_impl: str = "auto"  # packed (cuDNN) | flip (padded, 2x faster on CPU) | full (no padding only) | auto: flip
    #                         on CPU, and on a GPU where cuDNN's persistent kernel runs it (a multiple of 8
    #                         utterances, <= 128, under autocast), packed elsewhere on a GPU; full for an unpadded
    #                         batch (one file or window)
    utterance_cmn: bool = False  # subtract each utterance's per-bin mean (valid frames) after global normalization
    residual: bool = False  # add each BiLSTM layer's input to its output, from the second layer on (2H -> 2H)
    forget_bias: float = 0.0  # initial LSTM forget-gate bias (bias_ih + bias_hh); 1.0 is the classic choice


@dataclass
class OptimConfig:
    lr: float = 2e-3  # peak learning rate after warm-up
    weight_decay: float = 1e-2  # AdamW decoupled weight decay
    warmup_steps: int = 200  # linear warm-up, optimizer steps
    final_lr_ratio: float = 0.02  # cosine decay ends at lr * this
    clip_norm: float = 5.0  # gradient clipping, global L2 norm
    accum_grad: int = 1  # batches whose gradients add up to one optimizer step: accum_grad x data.max_frames per
    #                      step on a GPU too small for the recipe's batch; warm-up and decay count these steps
    epochs: int = 8  # passes over the training manifest
    max_bad_steps: int = 20  # consecutive non-finite losses before the run stops
    patience: int = 0  # stop after this many epochs in a row without a better dev WER, epochs (0: never)
    time_budget_min: float = 0.0  # wall time of the training loop (steps, dev passes, checkpoints), minutes; 0: none.
    #                               Above 0 the cosine decay follows the fraction of it spent instead of the steps, and
    #                               training stops (dev pass, checkpoints) when it is spent; optim.epochs is then a cap


@dataclass
class DataConfig:
    train_manifest: str = "data/demo/train-synth.jsonl"  # JSONL manifest path
    dev_manifest: str = "data/demo/dev-synth.jsonl"  # JSONL manifest used for keep-best
    max_frames: int = 24000  # padded feature frames per batch (10 ms each): 240 s of audio
    batch_multiple: int = 1  # utterances per batch (per DDP rank) rounded down to a multiple of this; 8 on a GPU
    #                          lets cuDNN run its persistent LSTM kernel (with max_utts 128: see conf/data/
    #                          librispeech_100.yaml)
    max_utts: int = 0  # utterances per batch (per DDP rank) at most; 0: no cap
    max_duration: float = 30.0  # longer utterances are reported and skipped, seconds
    min_duration: float = 0.1  # shorter utterances are reported and skipped, seconds
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)
    cache_features: bool = True  # compute features once and keep them in memory
    features_on: str = "auto"  # where uncached log-mels are computed: loader (DataLoader workers) | device (the
    #                            training device, per batch of padded waveforms; workers only decode audio, int16
    #                            for 16-bit PCM) |
    #                            auto: device on a GPU when cache_features is false, else loader
    sortagrad: bool = True  # first epoch from shortest to longest batch: CTC leaves its all-blank plateau sooner
    speed_perturb: list[float] = field(default_factory=list)  # speed factors, one drawn per training utterance and
    #                            epoch, e.g. [0.9, 1.0, 1.1] (Kaldi/ESPnet's; tempo and pitch together); needs
    #                            cache_features=false; a batch may then hold up to 1 / min(factors) x max_frames;
    #                            empty: off
    noise: Optional[str] = None  # folder of noise recordings (e.g. MUSAN's noise/) mixed into training utterances;
    #                               needs cache_features=false; None: off
    noise_snr: list[float] = field(default_factory=lambda: [5.0, 20.0])  # [lowest, highest] signal-to-noise ratio,
    #                               dB, drawn uniformly per utterance and epoch
    noise_prob: float = 0.5  # share of training utterances that get noise, per epoch, probability
    rir: Optional[str] = None  # folder of room impulse responses (e.g. OpenSLR 28's, or `asr synth-noise --kinds
    #                             rir`) convolved with training utterances before any noise; needs
    #                             cache_features=false; None: off
    rir_prob: float = 0.5  # share of training utterances that get reverberation, per epoch, probability
    stats: Optional[str] = None  # per-bin mean/std JSON of `asr stats` (None: computed from the training set at start)


@dataclass
class DecoderConfig:
    # Beam fields are read by asr/beam.py (flashlight-text); scores add to natural-log acoustic log-probs.
    type: str = "greedy"  # greedy | beam
    beam_size: int = 50  # hypotheses kept per frame (beam)
    lm: Optional[str] = None  # KenLM ARPA or binary n-gram file of words, or of characters (`asr lm build --unit
    #                           char`: searched without a lexicon, any spelling), e.g. from `asr lm build` (beam)
    lexicon: Optional[str] = None  # lexicon file, one "word c h a r s |" per line (beam); None: see lexicon_free
    lexicon_free: bool = False  # with an LM and no lexicon: False spells only the LM's words (a lexicon of its
    #                             vocabulary, ~8x faster); True lets any spelling through, at oov_score (beam)
    lm_weight: float = 1.0  # multiplies the LM's log10 probability of each word (character LM: letter) (beam)
    word_score: float = 0.0  # added per emitted word (character LM: word separator), natural-log units; > 0 favours
    #                          more words (beam)
    beam_size_token: Optional[int] = 8  # tokens tried per frame, best first (beam); None: all (with token_prune,
    #                                     as fast as 8 on the demo model's outputs, the same WER; without, 2.8x
    #                                     slower)
    token_prune: Optional[float] = 5.0  # plain beam search (no LM, lexicon or hotwords) does not try tokens more
    #                                   than this below the frame's best one, natural-log units (pyctcdecode's
    #                                   token_min_logp: -5); the same WER, 1.35x faster on the demo model's outputs.
    #                                   Not with a lexicon or hotwords, and with an LM lm_token_prune instead (beam);
    #                                   None: try them all
    lm_token_prune: Optional[float] = 8.0  # the same margin, natural-log units, for lexicon-free search with a
    #                                      word or character LM (no hotwords), where the LM rescues some such
    #                                      tokens: on the main job's dev split, word 3-gram, 1.8x faster for +0.3
    #                                      points (5: 3.7x, +1.9); never with a lexicon, where it cost 3.7-8.6
    #                                      points (beam); None: try them all
    beam_threshold: float = 10.0  # drop hypotheses scoring this far below the best, natural-log units (beam;
    #                               pyctcdecode's beam_prune_logp default; 25 decoded at the same WER, 1.2-1.7x slower)
    unk_score: float = float("-inf")  # added per out-of-lexicon word, lexicon mode only; -inf: never (beam)
    sil_score: float = 0.0  # added per frame that emits the word separator " ", natural-log units (beam)
    log_add: bool = False  # merge hypotheses with the same text by log-sum-exp instead of max (beam)
    nbest: int = 1  # hypotheses BeamDecoder.decode_nbest returns per utterance (beam)
    hotwords: list[str] = field(default_factory=list)  # words to favour, e.g. names (beam)
    hotword_score: float = 5.0  # added per emitted hotword, natural-log units (beam)
    oov_score: float = -10.0  # added per word outside the LM's vocabulary, lexicon-free with an LM only, natural-
    #                           log units, from the word's first unknown letter on (as pyctcdecode's unk_score_offset)
    max_search_frames: int = 1500  # output frames (1500: 60 s at 40 ms); a longer input is searched in pieces cut at
    #                                confident word separators, which bounds memory (the LM context restarts at each
    #                                cut; such an input gets one hypothesis, whatever nbest) (beam); 0: never cut


@dataclass
class TokenizerConfig:
    type: str = "char"  # char (letters, apostrophe, space) | bpe (sentencepiece pieces of the training transcripts)
    vocab_size: int = 256  # sentencepiece pieces incl. <unk> (bpe; a soft limit); the model adds the CTC blank
    model: Optional[str] = None  # sentencepiece .model (bpe), trained there when absent; None: RUN_DIR/bpe.model


@dataclass
class TrainConfig:
    run_dir: str = "runs/demo"  # checkpoints, metrics, plots and the resolved config go here
    seed: int = 0  # seeds model init, batch order and augmentation
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # fp32 | bf16 | fp16 (with a loss scaler; for GPUs without native bf16, e.g. V100, T4) |
    #                          auto: bf16 on a GPU with native bf16 (compute capability 8.0+), fp16 on older GPUs,
    #                          fp32 on CPU
    threads: int = 0  # CPU threads for torch (0: all cores)
    save_every: int = 0  # also checkpoint every N optimizer steps (0: at epoch ends only)
    resume: bool = True  # continue from run_dir/last.pt when it exists
    tensorboard: bool = False  # also write the metrics as TensorBoard event files to run_dir/tensorboard (needs the
    #                             tensorboard package: pip install 'asr[tensorboard]')
    keep_epochs: int = 0  # also keep epoch-N.pt (weights only) for the last N epochs, for `asr average` (0: none)
    init_from: Optional[str] = None  # checkpoint whose weights, normalization statistics and tokens start this run
    #                                  (fine-tuning a trained model on new data); its features and layer sizes must
    #                                  be this config's; data.stats, when set, replaces its statistics; ignored when
    #                                  the run resumes from run_dir/last.pt; None: random initialization
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)


def register_configs() -> None:
    """Store the schema: ``base_config`` for the primary config, ``base_<group>`` per group."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=TrainConfig)
    for group, node in [
        ("features", FeatureConfig),
        ("specaug", SpecAugmentConfig),
        ("model", ModelConfig),
        ("optim", OptimConfig),
        ("data", DataConfig),
        ("decoder", DecoderConfig),
        ("tokenizer", TokenizerConfig),
    ]:
        cs.store(group=group, name=f"base_{group}", node=node)


def compose(overrides: list[str] | None = None, config_name: str = "config"):
    """Compose conf/<config_name>.yaml with Hydra overrides; returns a read-only DictConfig.

    Raises UserError naming the bad key for unknown keys, wrong types or missing groups.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from asr.errors import UserError

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as e:
        msg = "; ".join(line.strip() for line in str(e).strip().splitlines() if line.strip())
        if e.__cause__ is not None:  # Hydra wraps the OmegaConf error that names the type problem
            msg += ": " + str(e.__cause__).strip().splitlines()[0]
        raise UserError(f"bad configuration: {msg}") from None
    OmegaConf.set_readonly(cfg, True)
    return cfg


def to_dataclass(cfg) -> TrainConfig:
    """DictConfig -> a plain TrainConfig (typed, no OmegaConf at run time)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg) if not isinstance(cfg, TrainConfig) else cfg


# Ranges the types cannot say, checked by ``check_ranges`` before any work starts: key -> allowed range,
# each range a name in _IN_RANGE, so the test and the message that names it cannot drift apart.
_IN_RANGE: dict[str, Callable[[float], bool]] = {
    "> 0": lambda v: v > 0, ">= 0": lambda v: v >= 0, ">= 1": lambda v: v >= 1,
    "in [0, 1]": lambda v: 0 <= v <= 1, "in [0, 1)": lambda v: 0 <= v < 1, ">= 2": lambda v: v >= 2,
}
_RANGES: dict[str, str] = {
    "features.sample_rate": "> 0", "features.n_mels": "> 0", "features.win_ms": "> 0", "features.hop_ms": "> 0",
    "features.n_fft": "> 0", "features.f_min": ">= 0",
    "specaug.freq_masks": ">= 0", "specaug.freq_width": ">= 0", "specaug.time_masks": ">= 0",
    "specaug.time_width": ">= 0", "specaug.time_ratio": "in [0, 1]", "specaug.freq_warp": "in [0, 1)",
    "specaug.freq_warp_prob": "in [0, 1]",
    "specaug.echo_prob": "in [0, 1]", "specaug.echo_min_ms": "> 0", "specaug.echo_max_ms": "> 0",
    "specaug.eq_prob": "in [0, 1]", "specaug.eq_db": ">= 0", "specaug.eq_points": ">= 2",
    "model.conv_channels": "> 0", "model.hidden": "> 0", "model.layers": "> 0", "model.dropout": "in [0, 1)",
    "optim.lr": "> 0", "optim.weight_decay": ">= 0", "optim.warmup_steps": ">= 0", "optim.final_lr_ratio": "in [0, 1]",
    "optim.clip_norm": "> 0", "optim.accum_grad": ">= 1", "optim.epochs": ">= 1", "optim.max_bad_steps": ">= 1",
    "optim.patience": ">= 0", "optim.time_budget_min": ">= 0",
    "data.max_frames": "> 0", "data.batch_multiple": ">= 1", "data.max_utts": ">= 0", "data.min_duration": ">= 0",
    "data.max_duration": "> 0", "data.num_workers": ">= 0",
    "data.noise_prob": "in [0, 1]", "data.rir_prob": "in [0, 1]",
    "threads": ">= 0", "save_every": ">= 0", "keep_epochs": ">= 0",
}


FREQ_WARP_AXES = ("mel", "hz")  # specaug.freq_warp_axis's choices (asr.features.SpecAugment)
SUBSAMPLINGS = (2, 3, 4, 6)  # model.subsampling's choices: the keys of asr.model.TIME_STRIDES

# Settings that take one of a few words (the device is checked where it is picked: it depends on the machine).
_CHOICES: list[tuple[str, tuple[str, ...]]] = [
    ("precision", ("auto", "fp32", "bf16", "fp16")), ("model.rnn_impl", ("auto", "packed", "flip", "full")),
    ("data.features_on", ("auto", "loader", "device")), ("decoder.type", ("greedy", "beam")),
    ("specaug.freq_warp_axis", FREQ_WARP_AXES),
]


def check_ranges(cfg: TrainConfig) -> None:
    """Raise UserError naming every value outside its range (``model.layers=0: must be > 0``) or its choices
    (``precision=fp8: expected auto, fp32, bf16 or fp16``), before any work."""
    from asr.errors import UserError

    def value_of(key: str):
        value: object = cfg
        for part in key.split("."):
            value = getattr(value, part)
        return value

    bad = [f"{key}={value_of(key)}: expected {', '.join(words[:-1])} or {words[-1]}"
           for key, words in _CHOICES if value_of(key) not in words]
    bad += [f"{key}={value_of(key)}: must be {allowed}" for key, allowed in _RANGES.items()
            if not _IN_RANGE[allowed](value_of(key))]
    if not all(0.5 <= x <= 2 for x in cfg.data.speed_perturb):
        bad.append(f"data.speed_perturb={list(cfg.data.speed_perturb)}: factors must be in [0.5, 2]")
    if cfg.data.speed_perturb and cfg.data.cache_features:
        bad.append("data.speed_perturb changes the audio every epoch, but data.cache_features=true computes the "
                   "features once: set data.cache_features=false")
    if cfg.data.noise and cfg.data.cache_features:
        bad.append("data.noise mixes new noise into the audio every epoch, but data.cache_features=true computes the "
                   "features once: set data.cache_features=false")
    if cfg.data.rir and cfg.data.cache_features:
        bad.append("data.rir reverberates the audio anew every epoch, but data.cache_features=true computes the "
                   "features once: set data.cache_features=false")
    if len(cfg.data.noise_snr) != 2 or cfg.data.noise_snr[0] > cfg.data.noise_snr[1]:
        bad.append(f"data.noise_snr={list(cfg.data.noise_snr)}: expected [lowest, highest] in dB, e.g. [5, 20]")
    if cfg.data.max_utts and cfg.data.batch_multiple >= 1 and cfg.data.max_utts % cfg.data.batch_multiple:
        bad.append(f"data.max_utts={cfg.data.max_utts} is not a multiple of data.batch_multiple="
                   f"{cfg.data.batch_multiple}: make it one (e.g. {cfg.data.batch_multiple * 16}) or 0 (no cap)")
    if cfg.model.subsampling not in SUBSAMPLINGS:
        bad.append(f"model.subsampling={cfg.model.subsampling}: expected 2, 3, 4 or 6 "
                   "(feature frames per output frame)")
    sa = cfg.specaug
    if sa.echo_min_ms > sa.echo_max_ms or sa.echo_min_db > sa.echo_max_db or sa.echo_max_db >= 0:
        bad.append(f"specaug.echo_min_ms/echo_max_ms={sa.echo_min_ms}/{sa.echo_max_ms}, echo_min_db/echo_max_db="
                   f"{sa.echo_min_db}/{sa.echo_max_db}: each pair must be [lowest, highest], the gains below 0 dB")
    if cfg.data.min_duration >= cfg.data.max_duration:
        bad.append(f"data.min_duration={cfg.data.min_duration} is not below data.max_duration={cfg.data.max_duration}")
    if bad:
        raise UserError("bad configuration: " + "; ".join(bad))
