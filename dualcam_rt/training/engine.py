"""The one training engine: teachers, students and distilled students are configurations of ``fit``.

A run lives in one directory: ``run.json`` (configuration, data, history, metrics), ``last.pt``
(everything needed to resume: weights, optimiser, epoch, early-stopping state, RNG) and
``best.pt`` (the weights with the best validation accuracy, which ``load_run`` returns).

Distillation (generalized distillation, Lopez-Paz et al.): soft labels s = softmax(f_t(x*)/T) are
computed once from the frozen teacher over the training clips, then the student minimises
(1 - lam) * CE(y, softmax(f_s(x))) + lam * CE(s, softmax(f_s(x))) (both plain softmax
cross-entropies, no T^2 factor, as in the official code).

Under ``torchrun`` the same code runs data-parallel (DDP; gloo on CPU, nccl on GPU): each process
trains on its shard of every epoch, every process validates on the whole validation set (so all
take the same early-stopping decision) and only rank 0 writes files.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..errors import BadInput, NotFound
from ..geometry import FPS
from ..labels import CLASSES
from .data import Clips
from .models import build_model, input_kind, MODELS

console = Console(stderr=True)
N_CLASSES = len(CLASSES)
STATS_CLIPS = 256  # clips used to fix in-graph input normalisation


@dataclass
class TrainConfig:
    """One training run; ``lr`` None means the paper's: 1e-3 for teachers, 1e-4 for students."""

    model: str
    epochs: int = 100
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.0
    patience: int = 10  # epochs without a better validation accuracy before stopping
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    variant: str | None = None  # DualCamNet: "code" (default) or "paper"
    weights: str | None = None  # local pretrained weights for the visual teachers
    lam: float = 0.0  # distillation imitation weight (0: hard labels only)
    temperature: float = 1.0
    teacher: str | None = None  # the teacher run directory a student was distilled from

    def __post_init__(self):
        if self.model not in MODELS:
            raise BadInput(f"unknown model {self.model!r}; known: {', '.join(MODELS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise BadInput("epochs and batch size must be at least 1")
        if not 0.0 <= self.lam <= 1.0:
            raise BadInput(f"lambda must be in [0, 1], got {self.lam}")
        if self.temperature <= 0:
            raise BadInput(f"temperature must be positive, got {self.temperature}")
        if self.lr is None:
            self.lr = 1e-3 if MODELS[self.model].role == "teacher" else 1e-4


class ClipDataset(Dataset):
    """Model inputs of clips: (inputs tuple, label, soft label (14,) or zeros)."""

    def __init__(self, clips: Clips, kind: str, train: bool = False, soft: np.ndarray | None = None):
        self.clips, self.kind, self.train = clips, kind, train
        self.soft = None if soft is None else torch.as_tensor(soft, dtype=torch.float32)
        if kind in ("spectrogram", "waveform"):
            self.x = torch.from_numpy(clips.student_features(kind))
        elif kind in ("mfcc_volume", "audio_visual") and clips.mfcc is None:
            raise BadInput("this model needs MFCC volumes, and the dataset's sessions have none")

    def __len__(self) -> int:
        return len(self.clips)

    def _mfcc(self, i: int) -> torch.Tensor:
        vol = torch.from_numpy(self.clips.mfcc[i].astype(np.float32))
        if self.train:  # a random 1-s window, as the teacher trains on 1-s records
            start = int(torch.randint(0, vol.shape[0] - FPS + 1, ()))
            vol = vol[start:start + FPS]
        return vol

    def _frames(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.clips.frames[i]).permute(0, 3, 1, 2).float() / 255.0

    def inputs(self, i: int) -> tuple[torch.Tensor, ...]:
        if self.kind in ("spectrogram", "waveform"):
            return (self.x[i],)
        if self.kind == "mfcc_volume":
            return (self._mfcc(i),)
        if self.kind == "video":
            return (self._frames(i),)
        return self._mfcc(i), self._frames(i)

    def __getitem__(self, i: int):
        soft = self.soft[i] if self.soft is not None else torch.zeros(N_CLASSES)
        return self.inputs(i), int(self.clips.label[i]), soft


# -- distributed -------------------------------------------------------------------------------

def init_distributed(device: str = "auto") -> bool:
    """Join the process group when launched by torchrun; True when running distributed."""
    if not dist.is_torchelastic_launched() or dist.is_initialized():
        return dist.is_initialized()
    use_cuda = _device(device).type == "cuda"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(dist.get_rank() % torch.cuda.device_count())
    return True


def is_main_process() -> bool:
    """True on rank 0 of a DDP run, and in a plain single-process run."""
    return _rank_world()[0] == 0


def _rank_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda asked for, but no CUDA device is available")
    if name == "cuda" and dist.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- training ---------------------------------------------------------------------------------

def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor, lam: float) -> torch.Tensor:
    """(1 - lam) * CE(y, softmax(logits)) + lam * CE(soft, softmax(logits)), averaged over the batch."""
    hard = F.cross_entropy(logits, labels)
    if lam == 0.0:
        return hard
    return (1 - lam) * hard + lam * -(soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def _to(inputs, device) -> list[torch.Tensor]:
    return [x.to(device, non_blocking=True) for x in inputs]


@torch.no_grad()
def predict_logits(model: nn.Module, clips: Clips, kind: str, batch_size: int = 32,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Logits (n, 14) float32 of whole clips (teachers see every stored MFCC second)."""
    model.eval()
    dev = torch.device(device) if isinstance(device, str) else device
    loader = DataLoader(ClipDataset(clips, kind), batch_size=batch_size)
    out = [model(*_to(inputs, dev)).float().cpu() for inputs, _, _ in loader]
    return torch.cat(out).numpy() if out else np.zeros((0, N_CLASSES), np.float32)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max is the label (NaN for no rows)."""
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else float("nan")


def soft_labels(teacher: nn.Module, clips: Clips, kind: str, temperature: float = 1.0,
                device: str | torch.device = "cpu") -> np.ndarray:
    """The teacher's soft labels softmax(f_t(x*) / T), (n, 14) float32, for every clip."""
    logits = torch.from_numpy(predict_logits(teacher, clips, kind, device=device))
    return torch.softmax(logits / temperature, dim=1).numpy()


def _prepare(model: nn.Module, ds: ClipDataset) -> None:
    """Fix in-graph input normalisation from (up to STATS_CLIPS) training inputs."""
    if not hasattr(model, "set_input_stats") or len(ds) == 0:
        return
    idx = np.linspace(0, len(ds) - 1, min(len(ds), STATS_CLIPS)).astype(int)
    batch = [ds.inputs(int(i)) for i in idx]
    with torch.no_grad():
        model.set_input_stats(*[torch.stack([b[k] for b in batch]) for k in range(len(batch[0]))])


def _save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-save never leaves a torn checkpoint


def fit(cfg: TrainConfig, train: Clips, val: Clips, out_dir: str | Path, soft: np.ndarray | None = None,
        resume: bool = False, progress: bool = True, extra_info: dict | None = None) -> dict:
    """Train ``cfg.model`` on ``train`` with early stopping on ``val``; returns the run's info
    (also written to ``out_dir/run.json``). ``soft`` holds the teacher's soft labels per training clip."""
    if len(train) == 0:
        raise BadInput("no training clips for this selection (check the scenarios and the split)")
    out = Path(out_dir)
    rank, world = _rank_world()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = _device(cfg.device)
    kind = input_kind(cfg.model)
    model = build_model(cfg.model, variant=cfg.variant, weights=cfg.weights)
    train_ds = ClipDataset(train, kind, train=True, soft=soft)
    _prepare(model, train_ds)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"epoch": 0, "best_acc": -1.0, "best_epoch": -1, "bad_epochs": 0, "history": []}
    last = out / "last.pt"
    if resume and last.is_file():
        ckpt = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        torch.set_rng_state(ckpt["rng"])
        if rank == 0:
            console.print(f"resuming {out} after epoch {state['epoch']}")
    elif resume and rank == 0:
        console.print(f"nothing to resume in {out}: starting afresh")
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    sampler = DistributedSampler(train_ds, world, rank, shuffle=True, seed=cfg.seed) if world > 1 else None
    gen = torch.Generator()
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        generator=gen if sampler is None else None, drop_last=False)
    val_has_clips = len(val) > 0
    epoch_seconds = []
    show = progress and rank == 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), console=console, transient=True, disable=not show) as bar:
        for epoch in range(state["epoch"], cfg.epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            gen.manual_seed(cfg.seed * 1000 + epoch)  # the same order per epoch whether resumed or not
            net.train()
            t0 = time.perf_counter()
            task = bar.add_task(f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}", total=len(loader), info="")
            loss_sum, correct, seen = 0.0, 0, 0
            for inputs, labels, soft_b in loader:
                labels, soft_b = labels.to(device), soft_b.to(device)
                logits = net(*_to(inputs, device))
                loss = distillation_loss(logits, labels, soft_b, cfg.lam)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach()) * len(labels)
                correct += int((logits.argmax(1) == labels).sum())
                seen += len(labels)
                bar.update(task, advance=1, info=f"loss {loss_sum / seen:.3f}")
            bar.remove_task(task)
            epoch_seconds.append(time.perf_counter() - t0)
            val_acc = accuracy(predict_logits(model, val, kind, cfg.batch_size, device), val.label) if val_has_clips else float("nan")
            score = val_acc if val_has_clips else float(epoch)  # no validation clips: keep the last epoch
            improved = score > state["best_acc"]
            state["history"].append({"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
                                     "val_accuracy": val_acc, "seconds": epoch_seconds[-1]})
            state["epoch"] = epoch + 1
            if improved:
                state.update(best_acc=score, best_epoch=epoch + 1, bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            if rank == 0:
                if improved:
                    _save({"model": model.state_dict()}, out / "best.pt")
                _save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state,
                       "rng": torch.get_rng_state()}, last)
                if show:
                    console.print(f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}: loss {state['history'][-1]['loss']:.4f} "
                                  f"train acc {state['history'][-1]['train_accuracy']:.3f} val acc {val_acc:.3f} "
                                  f"({epoch_seconds[-1]:.1f} s)", highlight=False)
            if val_has_clips and state["bad_epochs"] >= cfg.patience:
                if show:
                    console.print(f"early stop: no better validation accuracy for {cfg.patience} epochs")
                break
    if world > 1:
        dist.barrier()  # rank 0 has written best.pt
    model.load_state_dict(torch.load(out / "best.pt", map_location=device, weights_only=True)["model"])
    info = {
        "model": cfg.model, "input_kind": kind, "config": asdict(cfg), "classes": list(CLASSES),
        "clip_options": train.options.to_dict(), "world_size": world, "device": str(device),
        "train_clips": len(train), "val_clips": len(val), "train_scenarios": sorted({int(s) for s in train.scenario}),
        "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
        "best_val_accuracy": state["best_acc"] if val_has_clips else None,
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else None,
        "history": state["history"], **(extra_info or {}),
    }
    if rank == 0:
        write_run_info(out, info)
    info["_model"] = model
    return info


def write_run_info(run_dir: str | Path, info: dict) -> None:
    """Write ``run.json`` (without in-memory objects)."""
    clean = {k: v for k, v in info.items() if not k.startswith("_")}
    (Path(run_dir) / "run.json").write_text(json.dumps(clean, indent=2, default=_json_default) + "\n")


def _json_default(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, (tuple, Path)):
        return list(x) if isinstance(x, tuple) else str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def read_run_info(run_dir: str | Path) -> dict:
    """A run's ``run.json`` (NotFound if the directory holds no finished run)."""
    path = Path(run_dir) / "run.json"
    if not path.is_file() or not (Path(run_dir) / "best.pt").is_file():
        raise NotFound(f"{run_dir} is not a finished training run (no run.json / best.pt)")
    return json.loads(path.read_text())


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[nn.Module, dict]:
    """The best model of a finished run (eval mode) and its ``run.json``."""
    info = read_run_info(run_dir)
    cfg = info["config"]
    model = build_model(info["model"], variant=cfg.get("variant"), weights=None)
    state = torch.load(Path(run_dir) / "best.pt", map_location=device, weights_only=True)["model"]
    model.load_state_dict(state)
    return model.to(device).eval(), info
