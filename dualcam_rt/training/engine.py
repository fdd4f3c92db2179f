"""The one training engine: teachers, students and distilled students are configurations of a ``Trainer``.

``Trainer.fit`` is a short loop over small hooks, each idea in one place: ``train_epoch`` (one
pass over the shuffled training clips), ``validate`` (accuracy on the validation clips),
``EarlyStopping`` (patience on validation accuracy), ``checkpoint`` (``last.pt`` to resume,
``best.pt`` when validation improves), ``restore`` (``--resume``) and ``report`` (progress and
one line per epoch). The run directory's files are described in ``training/runs.py``, the loss
in ``training/losses.py``, DDP in ``training/distributed.py``.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..errors import BadInput
from ..frame import InputKind
from ..geometry import FPS
from ..labels import CLASSES
from .augment import BACKGROUND_CLASS, Augmenter, augmented_input, spec_augment
from .data import Clips
from .distributed import barrier, rank_world, resolve_device
from .losses import distillation_loss, soft_labels_from_logits
from .models import MODELS, build_model, input_kind
from .runs import BEST_FILE, LAST_FILE, fits, save_atomic, write_run_info

console = Console(stderr=True)
N_CLASSES = len(CLASSES)
STATS_CLIPS = 256  # clips used to fix in-graph input normalisation
TEACHER_LR, STUDENT_LR = 1e-3, 1e-4  # the paper's (Adam, batch 32)


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
    augment: bool = False  # students: a fresh microphone-and-room augmentation of every training clip (augment.py)
    background: bool = False  # students: a 15th class, augment.BACKGROUND_CLASS, for clips where no action happens
    spec_augment: bool = False  # HearNet: random frequency and time masks on every training spectrogram

    def __post_init__(self):
        if self.model not in MODELS:
            raise BadInput(f"unknown model {self.model!r}; known: {', '.join(MODELS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise BadInput("epochs and batch size must be at least 1")
        if self.patience < 1:
            raise BadInput(f"patience must be at least 1 epoch, got {self.patience}")
        if not 0.0 <= self.lam <= 1.0:
            raise BadInput(f"lambda must be in [0, 1], got {self.lam}")
        if self.temperature <= 0:
            raise BadInput(f"temperature must be positive, got {self.temperature}")
        if self.background and MODELS[self.model].role != "student":
            raise BadInput("a background class is for students (hearnet, soundnet)")
        if self.spec_augment and MODELS[self.model].input_kind != InputKind.SPECTROGRAM:
            raise BadInput("spec augment masks spectrograms: it is for hearnet")
        self.lr = self.learning_rate  # run.json records the rate used

    @property
    def learning_rate(self) -> float:
        """``lr``, or when it is None the paper's for this model's role."""
        if self.lr is not None:
            return self.lr
        return TEACHER_LR if MODELS[self.model].role == "teacher" else STUDENT_LR

    @property
    def classes(self) -> list[str]:
        """The classes the network's logits stand for."""
        return [*CLASSES, BACKGROUND_CLASS] if self.background else list(CLASSES)

    def training_identity(self) -> dict:
        """The fields that decide what is learned (not where or how fast, nor the epoch cap)."""
        return {k: v for k, v in asdict(self).items() if k not in ("epochs", "device", "threads", "teacher")}


class ClipDataset(Dataset):
    """Model inputs of clips: (inputs tuple, label, soft label (14,) or zeros)."""

    def __init__(
        self,
        clips: Clips,
        kind: InputKind,
        train: bool = False,
        soft: np.ndarray | None = None,
        augmenter: Augmenter | None = None,
        seed: int = 0,
    ):
        self.clips, self.kind, self.train = clips, InputKind(kind), train
        self.soft = None if soft is None else torch.as_tensor(soft, dtype=torch.float32)
        # training students see each clip through a new random microphone and room every time
        self.augmenter = augmenter if train and self.kind.one_microphone else None
        self.rng = np.random.default_rng([seed, 11])
        self.spec_augment = False  # the Trainer switches it on once the input statistics are fixed
        if self.kind.one_microphone and self.augmenter is None:
            self.x = torch.from_numpy(clips.student_features(self.kind, np.float16))
        elif self.kind.uses_mfcc and clips.mfcc is None:
            raise BadInput("this model needs MFCC volumes, and the dataset's sessions have none")

    def __len__(self) -> int:
        return len(self.clips)

    def _mfcc(self, i: int) -> torch.Tensor:
        assert self.clips.mfcc is not None  # checked in __init__
        vol = torch.from_numpy(self.clips.mfcc[i].astype(np.float32))
        if self.train:  # a random 1-s window, as the teacher trains on 1-s records
            start = int(torch.randint(0, vol.shape[0] - FPS + 1, ()))
            vol = vol[start : start + FPS]
        return vol

    def _frames(self, i: int) -> torch.Tensor:
        if self.clips.frames is None:
            raise BadInput("this model needs video frames, and none were loaded")
        return torch.from_numpy(self.clips.frames[i]).permute(0, 3, 1, 2).float() / 255.0

    def inputs(self, i: int) -> tuple[torch.Tensor, ...]:
        if self.augmenter is not None:
            wave = augmented_input(self.kind, self.clips.mic[i], self.augmenter, self.rng)
            return (torch.from_numpy(spec_augment(wave, self.rng) if self.spec_augment else wave),)
        if self.kind.one_microphone:
            x = self.x[i].float()  # stored as float16
            return (torch.from_numpy(spec_augment(x.numpy(), self.rng)) if self.spec_augment else x,)
        if self.kind is InputKind.MFCC_VOLUME:
            return (self._mfcc(i),)
        if self.kind is InputKind.VIDEO:
            return (self._frames(i),)
        return self._mfcc(i), self._frames(i)

    def __getitem__(self, i: int):
        soft = self.soft[i] if self.soft is not None else torch.zeros(N_CLASSES)
        return self.inputs(i), int(self.clips.label[i]), soft


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _to(inputs, device) -> list[torch.Tensor]:
    return [x.to(device, non_blocking=True) for x in inputs]


@torch.no_grad()
def predict_logits(
    model: nn.Module, clips: Clips, kind: InputKind, batch_size: int = 32, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Logits (n, 14) float32 of whole clips (teachers see every stored MFCC second)."""
    model.eval()
    dev = torch.device(device) if isinstance(device, str) else device
    loader = DataLoader(ClipDataset(clips, kind), batch_size=batch_size)
    out = [model(*_to(inputs, dev)).float().cpu() for inputs, _, _ in loader]
    return torch.cat(out).numpy() if out else np.zeros((0, N_CLASSES), np.float32)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max is the label (NaN for no rows)."""
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else float("nan")


def soft_labels(
    teacher: nn.Module,
    clips: Clips,
    kind: InputKind,
    temperature: float = 1.0,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """The teacher's soft labels softmax(f_t(x*) / T), (n, 14) float32, for every clip."""
    device = device if device is not None else next(teacher.parameters()).device
    logits = torch.from_numpy(predict_logits(teacher, clips, kind, device=device))
    return soft_labels_from_logits(logits, temperature).numpy()


def set_input_stats(model: nn.Module, ds: ClipDataset) -> None:
    """Fix in-graph input normalisation from (up to STATS_CLIPS) training inputs."""
    fix_stats = getattr(model, "set_input_stats", None)
    if fix_stats is None or len(ds) == 0:
        return
    idx = np.linspace(0, len(ds) - 1, min(len(ds), STATS_CLIPS)).astype(int)
    batch = [ds.inputs(int(i)) for i in idx]
    with torch.no_grad():
        fix_stats(*[torch.stack([b[k] for b in batch]) for k in range(len(batch[0]))])


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs without a better validation accuracy; remembers the best."""

    patience: int
    best_score: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, score: float, epoch: int) -> bool:
        """Record epoch ``epoch``'s score; True when it is the best so far."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


@dataclass
class EpochStats:
    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float
    seconds: float


class Trainer:
    """Trains ``cfg.model`` on ``train`` with early stopping on ``val``, into ``out_dir``.

    ``soft`` holds the teacher's soft labels per training clip (distillation, ``cfg.lam`` > 0).
    With ``cfg.augment`` a student's training clips go through ``augmenter`` (default: one
    without ambience recordings; the CLI hands one with the sound bank's train ambience)."""

    def __init__(
        self,
        cfg: TrainConfig,
        train: Clips,
        val: Clips,
        out_dir: str | Path,
        soft: np.ndarray | None = None,
        progress: bool = True,
        augmenter: Augmenter | None = None,
    ):
        if len(train) == 0:
            raise BadInput("no training clips for this selection (check the scenarios and the split)")
        self.cfg, self.train_clips, self.val_clips, self.out = cfg, train, val, Path(out_dir)
        self.rank, self.world = rank_world()
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.kind = input_kind(cfg.model)
        self.model = build_model(cfg.model, variant=cfg.variant, weights=cfg.weights, n_classes=len(cfg.classes))
        self.augmenter = (augmenter or Augmenter()) if cfg.augment and self.kind.one_microphone else None
        train_ds = ClipDataset(train, self.kind, train=True, soft=soft, augmenter=self.augmenter, seed=cfg.seed)
        set_input_stats(self.model, train_ds)  # from unmasked inputs
        train_ds.spec_augment = cfg.spec_augment and self.kind is InputKind.SPECTROGRAM
        self.model.to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.stopper = EarlyStopping(cfg.patience)
        self.epoch = 0  # epochs finished
        self.history: list[dict] = []  # one EpochStats dict per epoch
        self.net = nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model
        self.sampler: DistributedSampler | None = None
        if self.world > 1:
            self.sampler = DistributedSampler(train_ds, self.world, self.rank, shuffle=True, seed=cfg.seed)
        self.shuffle = torch.Generator()
        self.loader = DataLoader(
            train_ds,
            batch_size=cfg.batch_size,
            shuffle=self.sampler is None,
            sampler=self.sampler,
            generator=self.shuffle if self.sampler is None else None,
        )
        self.show = progress and self.rank == 0
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=True,
            disable=not self.show,
        )

    # -- hooks ---------------------------------------------------------------------------------

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training clips; (mean loss, training accuracy)."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.shuffle.manual_seed(self.cfg.seed * 1000 + epoch)  # the same order whether resumed or not
        self.net.train()
        task = self.bar.add_task(
            f"{self.cfg.model} epoch {epoch + 1}/{self.cfg.epochs}", total=len(self.loader), info=""
        )
        loss_sum, correct, seen = 0.0, 0, 0
        for inputs, labels, soft in self.loader:
            labels, soft = labels.to(self.device), soft.to(self.device)
            logits = self.net(*_to(inputs, self.device))
            loss = distillation_loss(logits, labels, soft, self.cfg.lam)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_sum += float(loss.detach()) * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            self.bar.update(task, advance=1, info=f"loss {loss_sum / seen:.3f}")
        self.bar.remove_task(task)
        return loss_sum / max(seen, 1), correct / max(seen, 1)

    def validate(self) -> float:
        """Accuracy on the whole validation set (NaN without validation clips)."""
        if len(self.val_clips) == 0:
            return float("nan")
        logits = predict_logits(self.model, self.val_clips, self.kind, self.cfg.batch_size, self.device)
        return accuracy(logits, self.val_clips.label)

    def checkpoint(self, improved: bool) -> None:
        """``best.pt`` when validation improved, ``last.pt`` always (rank 0 only)."""
        if self.rank != 0:
            return
        if improved:
            save_atomic({"model": self.model.state_dict()}, self.out / BEST_FILE)
        save_atomic(
            {
                "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(),
                "identity": self.cfg.training_identity(),
                "epoch": self.epoch,
                "history": self.history,
                "stopper": asdict(self.stopper),
                "rng": torch.get_rng_state(),
            },
            self.out / LAST_FILE,
        )

    def restore(self) -> bool:
        """Continue from ``last.pt`` if it holds this configuration; True when it did."""
        last = self.out / LAST_FILE
        if not last.is_file():
            self._say(f"nothing to resume in {self.out}: starting afresh")
            return False
        ckpt = torch.load(last, map_location=self.device, weights_only=False)
        if ckpt.get("identity") != self.cfg.training_identity():
            self._say(f"{last} is a run with other settings: starting afresh")
            return False
        if not fits(self.model, ckpt["model"]):
            self._say(f"{last} holds another shape of {self.cfg.model} (an older dualcam-rt?): starting afresh")
            return False
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.epoch, self.history = ckpt["epoch"], ckpt["history"]
        self.stopper = EarlyStopping(**ckpt["stopper"])
        torch.set_rng_state(ckpt["rng"])
        self._say(f"resuming {self.out} after epoch {self.epoch}")
        return True

    def report(self, stats: EpochStats) -> None:
        self._say(
            f"{self.cfg.model} epoch {stats.epoch}/{self.cfg.epochs}: loss {stats.loss:.4f} "
            f"train acc {stats.train_accuracy:.3f} val acc {stats.val_accuracy:.3f} ({stats.seconds:.1f} s)"
        )

    # -- the loop ------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> nn.Module:
        """Train until the epoch cap or early stopping; returns the model holding the best weights."""
        if resume:
            self.restore()
        has_val = len(self.val_clips) > 0
        with self.bar:
            while self.epoch < self.cfg.epochs and not (has_val and self.stopper.should_stop):
                t0 = time.perf_counter()
                loss, train_acc = self.train_epoch(self.epoch)
                seconds = time.perf_counter() - t0
                val_acc = self.validate()
                self.epoch += 1
                stats = EpochStats(self.epoch, loss, train_acc, val_acc, seconds)
                self.history.append(asdict(stats))
                # without validation clips the last epoch counts as the best
                improved = self.stopper.update(val_acc if has_val else float(self.epoch), self.epoch)
                self.checkpoint(improved)
                self.report(stats)
            if has_val and self.stopper.should_stop:
                self._say(f"early stop: no better validation accuracy for {self.cfg.patience} epochs")
        barrier()  # rank 0 has written best.pt
        best = torch.load(self.out / BEST_FILE, map_location=self.device, weights_only=True)["model"]
        self.model.load_state_dict(best)
        return self.model

    def info(self) -> dict:
        """What ``run.json`` records about this run."""
        has_val = len(self.val_clips) > 0
        train_seconds = [h["seconds"] for h in self.history]
        return {
            "model": self.cfg.model,
            "input_kind": str(self.kind),
            "config": asdict(self.cfg),
            "classes": self.cfg.classes,
            "clip_options": self.train_clips.options.to_dict(),
            "world_size": self.world,
            "device": str(self.device),
            "train_clips": len(self.train_clips),
            "val_clips": len(self.val_clips),
            "augmentation": self.augmenter.describe() if self.augmenter else None,
            "train_scenarios": sorted({int(s) for s in self.train_clips.scenario}),
            "epochs_run": self.epoch,
            "best_epoch": self.stopper.best_epoch,
            "best_val_accuracy": self.stopper.best_score if has_val else None,
            "early_stopped": bool(has_val and self.stopper.should_stop),
            "seconds_per_epoch": float(np.mean(train_seconds)) if train_seconds else None,
            "history": self.history,
        }

    def _say(self, text: str) -> None:
        if self.show:
            console.print(text, highlight=False)


def fit(
    cfg: TrainConfig,
    train: Clips,
    val: Clips,
    out_dir: str | Path,
    soft: np.ndarray | None = None,
    resume: bool = False,
    progress: bool = True,
    extra_info: dict | None = None,
    augmenter: Augmenter | None = None,
) -> dict:
    """Train one run (see ``Trainer``); returns its info, also written to ``out_dir/run.json``,
    with the trained model (best weights) under ``"_model"``."""
    trainer = Trainer(cfg, train, val, out_dir, soft=soft, progress=progress, augmenter=augmenter)
    model = trainer.fit(resume=resume)
    info = {**trainer.info(), **(extra_info or {})}
    if trainer.rank == 0:
        write_run_info(out_dir, info)
    info["_model"] = model
    return info
