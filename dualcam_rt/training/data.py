"""Training data: a dataset's sessions cut into fixed-length clips, held in memory as arrays.

A dataset is a directory of sessions plus ``manifest.json`` (written by ``make-dataset``). Each
session is cut into non-overlapping clips of ``clip_seconds`` (default 5 s, the students' input
length); a session shorter than one clip gives one clip, looped. Per clip we keep what any model
needs: microphone 0 (samples at 12,288 Hz), the MFCC volumes of its first ``mfcc_seconds``
(12 per second, 36x48x12, float16 to halve memory) and ``video_frames`` frames evenly spaced in the
clip, resized to ``frame_size`` (width, height, a parameter: the visual teachers' input size) and
converted to RGB. Scenarios, subjects and splits come from the manifest, so the cross-scenario
protocol is a selection of rows; every split column is kept (``Clips.splits``) and
``Clips.with_split`` switches between them without reloading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import cv2
import numpy as np

from ..dsp.spectrogram import student_input
from ..errors import BadInput, NotFound
from ..frame import InputKind
from ..geometry import FPS, SAMPLE_RATE
from ..labels import CLASSES
from ..sessions import open_session
from ..sessions.manifest import chunk_split

# "split": whole sequences 80/10/10 per class; "subject_split": whole subjects; "chunk_split": the
# official code's 10-s chunks of every sequence shuffled 80/10/10 (neighbouring chunks of one
# sequence land in different splits), computed from the manifest, not stored in it
SPLIT_COLUMNS = ("split", "subject_split", "chunk_split")


@dataclass
class ClipOptions:
    """How sessions are cut into clips and what is kept of each."""

    clip_seconds: float = 5.0
    mfcc_seconds: int = 5  # seconds of MFCC volumes per clip the acoustic teacher sees (<= clip)
    video_frames: int = 2  # frames per clip for the visual teachers
    frame_size: tuple[int, int] = (160, 120)  # (width, height) the visual teachers see: whole frames, props readable
    max_clips_per_session: int | None = None
    split_column: str = "split"  # one of SPLIT_COLUMNS

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Clips:
    """Clips of a dataset, one row per clip; arrays may be None when not loaded."""

    label: np.ndarray  # (n,) int64 class index
    scenario: np.ndarray  # (n,) int
    subject: np.ndarray  # (n,) int
    split: np.ndarray  # (n,) str: train | val | test
    session: np.ndarray  # (n,) str session id
    mic: np.ndarray  # (n, clip_samples) float32 Pa, microphone 0 at 12,288 Hz
    mfcc: np.ndarray | None = None  # (n, 12 * mfcc_seconds, 36, 48, 12) float16
    frames: np.ndarray | None = None  # (n, video_frames, height, width, 3) uint8 RGB
    options: ClipOptions = field(default_factory=ClipOptions)
    splits: dict[str, np.ndarray] = field(default_factory=dict)  # every split column the dataset has
    _features: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.label)

    def take(self, mask_or_index) -> Clips:
        """The clips selected by a boolean mask or an index array."""
        idx = np.flatnonzero(mask_or_index) if np.asarray(mask_or_index).dtype == bool else np.asarray(mask_or_index)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        feats = {k: v[idx] for k, v in self._features.items()}
        return replace(
            self,
            label=self.label[idx],
            scenario=self.scenario[idx],
            subject=self.subject[idx],
            split=self.split[idx],
            session=self.session[idx],
            mic=self.mic[idx],
            mfcc=pick(self.mfcc),
            frames=pick(self.frames),
            _features=feats,
            splits={k: v[idx] for k, v in self.splits.items()},
        )

    def with_split(self, column: str) -> Clips:
        """The same clips with ``split`` taken from another split column (one of SPLIT_COLUMNS)."""
        if column not in self.splits:
            raise BadInput(f"the dataset has no {column!r} split (it has: {', '.join(self.splits) or 'none'})")
        return replace(self, split=self.splits[column], options=replace(self.options, split_column=column))

    def select(self, split: str | None = None, scenarios: tuple[int, ...] | None = None) -> Clips:
        """The clips of one split and (optionally) some scenarios only."""
        mask = np.ones(len(self), dtype=bool)
        if split is not None:
            mask &= self.split == split
        if scenarios is not None:
            mask &= np.isin(self.scenario, scenarios)
        return self.take(mask)

    def student_features(self, kind: InputKind, dtype: type = np.float32) -> np.ndarray:
        """Student inputs of every clip, (n, 257, 500) or (n, 110250), computed once per dtype.

        Training keeps them as float16 (half the memory: dB magnitudes to 0.06 dB, the waveform's
        +-256 to 0.125); onnxruntime takes float32."""
        kind = InputKind(kind)
        key = (kind, np.dtype(dtype).name)
        if key not in self._features:
            if len(self) == 0:
                shape = (0, 257, 500) if kind is InputKind.SPECTROGRAM else (0, 110250)
                self._features[key] = np.zeros(shape, dtype)
            else:  # filled in place: a list then np.stack would hold every feature twice
                first = student_input(kind, self.mic[0], SAMPLE_RATE)
                out = np.empty((len(self), *first.shape), dtype)
                out[0] = first
                for i in range(1, len(self)):
                    out[i] = student_input(kind, self.mic[i], SAMPLE_RATE)
                self._features[key] = out
        return self._features[key]

    def extended(self, mic: np.ndarray, label: np.ndarray, split: np.ndarray, tag: str) -> Clips:
        """These clips plus microphone-only clips (students: background or sound-bank clips) with
        labels ``label`` and ``split`` in every split column, spread over the three scenarios so that
        any scenario selection keeps some; sessions are named ``tag-<i>``."""
        if self.mfcc is not None or self.frames is not None:
            raise BadInput("microphone-only clips are for students: load the clips without MFCC volumes and video")
        n = len(label)
        if mic.shape != (n, self.mic.shape[1]):
            raise BadInput(f"extra clips must be ({n}, {self.mic.shape[1]}) samples, got {mic.shape}")
        split = np.asarray(split)
        cat = lambda a, b: np.concatenate([a, np.asarray(b, a.dtype) if a.dtype.kind != "U" else np.asarray(b)])  # noqa: E731
        return replace(
            self,
            label=cat(self.label, label),
            scenario=cat(self.scenario, np.arange(n) % 3 + 1),
            subject=cat(self.subject, np.full(n, -1)),
            split=cat(self.split, split),
            session=cat(self.session, [f"{tag}-{i}" for i in range(n)]),
            mic=np.concatenate([self.mic, mic.astype(np.float32)]),
            splits={k: cat(v, split) for k, v in self.splits.items()},
            _features={},
        )


def read_manifest(dataset_dir: str | Path) -> dict:
    """The dataset's manifest.json as a dict (NotFound / BadInput when missing or malformed)."""
    path = Path(dataset_dir) / "manifest.json"
    if not path.is_file():
        raise NotFound(f"no manifest.json in {dataset_dir} (make one with: dualcam-rt make-dataset --out DIR)")
    try:
        manifest = json.loads(path.read_text())
        sessions = manifest["sessions"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise BadInput(f"cannot read {path}: {err}") from err
    if not sessions:
        raise BadInput(f"{path} lists no sessions")
    classes = manifest.get("classes")
    if classes and list(classes) != list(CLASSES):
        raise BadInput(f"{path} has classes {classes}, this build knows {list(CLASSES)}")
    return manifest


def load_clips(
    dataset_dir: str | Path, options: ClipOptions | None = None, need_mfcc: bool = True, need_video: bool = True
) -> Clips:
    """Every session of a dataset cut into clips (see the module docstring)."""
    opt = options or ClipOptions()
    if opt.split_column not in SPLIT_COLUMNS:
        raise BadInput(f"split column must be one of {SPLIT_COLUMNS}, got {opt.split_column!r}")
    if opt.mfcc_seconds < 1 or opt.mfcc_seconds > opt.clip_seconds:
        raise BadInput(f"mfcc_seconds must be between 1 and clip_seconds ({opt.clip_seconds}), got {opt.mfcc_seconds}")
    root = Path(dataset_dir)
    manifest = read_manifest(root)
    clip_ticks = round(opt.clip_seconds * FPS)
    rows: dict[str, list] = {k: [] for k in ("label", "scenario", "subject", "session", "mic", "mfcc", "frames")}
    needs = {c: c for c in SPLIT_COLUMNS} | {"chunk_split": "seconds"}  # chunk_split is computed from the lengths
    columns = [c for c in SPLIT_COLUMNS if all(needs[c] in e for e in manifest["sessions"])]
    chunks = _chunks_by_session(manifest) if "chunk_split" in columns else {}
    if opt.split_column not in columns:
        raise BadInput(
            f"{root / 'manifest.json'} has no {opt.split_column!r} column (remake the dataset with make-dataset)"
        )
    splits: dict[str, list] = {c: [] for c in columns}
    for entry in manifest["sessions"]:
        with open_session(root / entry["path"]) as s:
            n_ticks = int(s.n_ticks)
            if n_ticks == 0:
                continue
            mic = s.mic(0)
            block = len(mic) // n_ticks
            mfcc = s.mfcc() if need_mfcc else None
            stamps = s.video_timestamps() if need_video and s.n_video_frames else None
            t_base = float(s.ticks["timestamp"][0])  # the device clock need not start at 0
            starts = list(range(0, max(n_ticks - clip_ticks, 0) + 1, clip_ticks))
            if opt.max_clips_per_session:
                starts = starts[: opt.max_clips_per_session]
            for t0 in starts:
                rows["label"].append(int(entry.get("class_index", CLASSES.index(entry["label"]))))
                rows["scenario"].append(int(entry["scenario"]))
                rows["subject"].append(int(entry.get("subject", 0)))
                for c in columns:
                    splits[c].append(_chunk_of(chunks[entry["id"]], t0 / FPS) if c == "chunk_split" else str(entry[c]))
                rows["session"].append(str(entry["id"]))
                rows["mic"].append(_loop(mic[t0 * block : (t0 + clip_ticks) * block], clip_ticks * block))
                if mfcc is not None:
                    n = FPS * opt.mfcc_seconds
                    rows["mfcc"].append(_loop(mfcc[t0 : t0 + n], n).astype(np.float16))
                if need_video:
                    rows["frames"].append(_clip_frames(s, stamps, t_base, t0, clip_ticks, opt))
    if not rows["label"]:
        raise BadInput(f"dataset {root} has no audio")
    split_arrays = {c: np.asarray(v) for c, v in splits.items()}
    return Clips(
        label=np.asarray(rows["label"], np.int64),
        scenario=np.asarray(rows["scenario"]),
        subject=np.asarray(rows["subject"]),
        split=split_arrays[opt.split_column],
        splits=split_arrays,
        session=np.asarray(rows["session"]),
        mic=np.stack(rows["mic"]).astype(np.float32),
        mfcc=np.stack(rows["mfcc"]) if rows["mfcc"] else None,
        frames=np.stack(rows["frames"]) if rows["frames"] else None,
        options=opt,
    )


def _chunks_by_session(manifest: dict) -> dict[str, list[dict]]:
    """The official code's chunks of every session, {session id: [chunk with start_s, end_s, split]}."""
    out: dict[str, list[dict]] = {}
    for chunk in chunk_split(manifest):
        out.setdefault(chunk["id"], []).append(chunk)
    return out


def _chunk_of(chunks: list[dict], start_s: float) -> str:
    """The split of the chunk a clip starting at ``start_s`` falls in (a clip belongs to the chunk of
    its first second, so a clip that spans two chunks lands where its start does)."""
    for c in chunks:
        if c["start_s"] - 1e-9 <= start_s < c["end_s"]:
            return str(c["split"])
    return str(chunks[-1]["split"])


def _loop(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or repeated along its first axis to exactly ``n`` rows."""
    if len(x) == 0:
        raise BadInput("empty clip")
    reps = -(-n // len(x))
    return np.concatenate([x] * reps)[:n] if reps > 1 else x[:n]


def _clip_frames(session, stamps, t_base: float, t0: int, clip_ticks: int, opt: ClipOptions) -> np.ndarray:
    """``opt.video_frames`` frames (k, h, w, 3) uint8 RGB nearest to times spread over the clip."""
    w, h = opt.frame_size
    if stamps is None or len(stamps) == 0:
        return np.zeros((opt.video_frames, h, w, 3), np.uint8)  # no camera: the visual teachers see black
    wanted = t_base + (t0 + (np.arange(opt.video_frames) + 0.5) * clip_ticks / opt.video_frames) / FPS
    idx = np.clip(np.searchsorted(stamps, wanted), 0, len(stamps) - 1)
    out = []
    for i in idx:
        bgr = cv2.resize(session.video_frame(int(i)), (w, h), interpolation=cv2.INTER_AREA)
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return np.stack(out)
