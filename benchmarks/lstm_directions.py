"""Prototype measurement: one BiLSTM layer, fwd+bwd, its two directions run at once on one thread each.

The question (benchmarks/README.md, item 5 of the changes): on 2 CPU cores, does running the forward
and the backward direction concurrently, one torch thread each, beat oneDNN's bidirectional kernel on
2 threads? Not part of run.py: a one-off, kept with its numbers in the README.

    .venv/bin/python benchmarks/lstm_directions.py
"""

from __future__ import annotations

import threading

from common import best_time, threads  # also puts the repository on sys.path

import torch

T = 300  # output frames (12 s of audio at 40 ms)
SHAPES = [(256, 512), (512, 1024)]  # (hidden units per direction, input size of an upper layer: 2H)


def one_direction(lstm: torch.nn.LSTM, x: torch.Tensor) -> None:
    torch.set_num_threads(1)  # this thread's OpenMP team: one thread
    y, _ = lstm(x)
    y.sum().backward()


def main() -> None:
    torch.manual_seed(0)
    for hidden, inp in SHAPES:
        for batch in (4, 8):
            x = torch.randn(T, batch, inp, requires_grad=True)  # (T', B, 2H), time first
            bi = torch.nn.LSTM(inp, hidden, bidirectional=True)
            fwd, bwd = torch.nn.LSTM(inp, hidden), torch.nn.LSTM(inp, hidden)

            def bidirectional() -> None:
                y, _ = bi(x)
                y.sum().backward()

            def concurrent() -> None:
                xr = x.detach().flip(0).requires_grad_()  # the backward direction reads time reversed
                other = threading.Thread(target=one_direction, args=(bwd, xr))
                other.start()
                one_direction(fwd, x)
                other.join()

            with threads(2):  # the reference's two threads; restored after the threads of `concurrent` set 1
                ref = best_time(bidirectional, reps=5)
                ours = best_time(concurrent, reps=5)
            print(f"H={hidden} B={batch} T'={T}: bidirectional kernel, 2 threads {ref * 1e3:.0f} ms; "
                  f"two directions in two threads, 1 each {ours * 1e3:.0f} ms: {ref / ours:.2f}x", flush=True)


if __name__ == "__main__":
    main()
