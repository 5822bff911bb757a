"""PyTorch DDP under torchrun: rank discovery, process group set-up, model wrapping.

Started as ``torchrun --nproc_per_node=N -m asr.cli train ...`` (or ``torchrun $(which asr) train``);
without torchrun's environment everything is single-process and a no-op.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as td


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def setup() -> tuple[int, int]:
    """(rank, world size); initializes the process group (NCCL on GPU, gloo on CPU) under torchrun."""
    if world_size() == 1:
        return 0, 1
    if not td.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank())
        td.init_process_group(backend)
    return td.get_rank(), td.get_world_size()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not (td.is_available() and td.is_initialized()):
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums of ``values`` over ranks in one all-reduce (the values themselves without DDP)."""
    if not (td.is_available() and td.is_initialized()):
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t)
    return t.tolist()


def cleanup(wait: bool = False) -> None:
    """Destroy the process group. ``wait``: after a run every rank finished, first wait for all of them (rank 0
    may still be writing checkpoints), so that they tear it down together, as PyTorch asks of
    ``destroy_process_group``; without it, rank 1 once aborted at the end of the DDP test on CPU (gloo, 1 of
    13 runs, under load)."""
    if td.is_available() and td.is_initialized():
        if wait:
            try:
                td.barrier(device_ids=[local_rank()]) if td.get_backend() == "nccl" else td.barrier()
            except RuntimeError as e:  # a rank that died: tear down anyway
                print(f"warning: ranks did not meet before shutting down: {e}", file=sys.stderr)
        td.destroy_process_group()


def pick_device(name: str) -> torch.device:
    """``auto`` (this rank's GPU when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N`` -> a device;
    a UserError naming what this machine has otherwise."""
    from asr.errors import UserError

    if name == "auto":
        return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r}, but no CUDA GPU is available here; use cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"device {name!r}, but this machine has {count} CUDA GPU(s): cuda:0 to cuda:{count - 1}")
    elif device.type != "cpu":
        raise UserError(f"device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device
