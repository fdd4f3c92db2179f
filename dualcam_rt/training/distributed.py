"""Where a run executes: the torch device, and the DDP process group under ``torchrun``.

Under ``torchrun`` every process trains on its shard of each epoch (gloo on CPU, nccl on GPU);
all of them validate on the whole validation set, so they take the same early-stopping decision,
and only rank 0 writes files.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..errors import BadInput


def init_distributed(device: str = "auto") -> bool:
    """Join the process group when launched by torchrun; True when running distributed."""
    if not dist.is_torchelastic_launched() or dist.is_initialized():
        return dist.is_initialized()
    use_cuda = resolve_device(device).type == "cuda"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(dist.get_rank() % torch.cuda.device_count())
    return True


def rank_world() -> tuple[int, int]:
    """(this process's rank, the number of processes); (0, 1) outside DDP."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def is_main_process() -> bool:
    """True on rank 0 of a DDP run, and in a plain single-process run."""
    return rank_world()[0] == 0


def barrier() -> None:
    """Wait for every process (a no-op outside DDP)."""
    if dist.is_initialized():
        dist.barrier()


def resolve_device(name: str) -> torch.device:
    """The torch device for ``auto|cpu|cuda`` (BadInput for cuda without one)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda asked for, but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise BadInput(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and dist.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def torch_threads() -> int:
    """The intra-op threads torch runs with in this process."""
    return torch.get_num_threads()
