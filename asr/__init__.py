"""asr: a bidirectional-LSTM CTC speech recognizer."""

__version__ = "0.1.0"
