"""The sound bank: real recorded events and ambience from the allow-listed packages, at 12,288 Hz.

``build_bank(out_dir, preset)`` finds the installed files of ``SOURCES`` (the allow-list of
``SOUND_SOURCES.md``; nothing else may be used for training, validation or tuning), decodes them
(soundfile: WAV, OGG/Vorbis, FLAC, MP3; GCompris' sounds come out of its Qt resource files via
``qrc``), mixes to mono, resamples to the sensor rate, cuts long files into events, removes
duplicates, assigns each source recording to one split, and writes ``out_dir``:

- ``manifest.json``: every recording (class, package, path, licence from the package's copyright
  file, original rate, duration, content hash, split), every event (file, recording, onset,
  duration, content hash), the duplicates and the skipped (unreadable) files, and a per-class
  summary of real recordings and events per split. Sorted and timestamp-free: the same inputs
  give the same bytes.
- ``events/<class>/<hash>.flac`` and ``ambience/<hash>.flac``: 16-bit FLAC, mono, 12,288 Hz.

Conventions:

- Normalisation: every event is peak-normalised (stored at a peak of ``STORED_PEAK`` so 16-bit
  FLAC cannot clip; ``SoundBank`` hands it back at a peak of exactly 1). Levels are the scene's
  job (subject gain, SNR), so the bank keeps shapes, not loudness.
- Events: ``cut="gate"`` sources (percussive classes) are split by an energy gate: 10 ms frames,
  active where the level is above both the recording's noise floor + 10 dB and its peak - 35 dB
  (but at most 10 dB below the peak, for samples that are all attack),
  gaps shorter than the source's ``min_gap_s`` merged, 10 ms kept before an onset and 120 ms of
  decay after; events more than 30 dB below the loudest are dropped. ``cut="file"`` sources
  (speech, single events, ambience) are trimmed to where the level is within 50 dB of the peak
  and cut into consecutive pieces of at most ``max_event_s``.
- Duplicates: an event whose content hash (of its normalised 16-bit samples) was seen before is
  the same recording shipped twice; an event of the same class whose normalised first second
  correlates at >= ``DUPLICATE_CORRELATION`` with a kept one (best lag within 5 ms, after a
  pre-filter on length and gain-free band energies) is one take stored at another gain. The first in source-table order
  is kept; the others are listed under ``duplicates``.
- Splits are per source recording, never per event: within each class the recordings are
  ranked by a hash of their package and path; a class with >= 3 recordings gets >= 1 test and
  >= 1 validation recording (15 % each, rounded; recordings holding over a quarter of the
  class's events stay in train when enough others exist), 2 recordings give one train and one
  test (the one with fewer events), and
  a single recording is train only: that class's validation and test takes must come from
  augmented or procedural events (the manifest says so under ``notes``). Ambience is split the
  same way as one group.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..dsp.resample import resample
from ..errors import BadInput, NotFound
from ..geometry import SAMPLE_RATE
from ..labels import CLASSES, class_index
from .qrc import RccFile

BANK_VERSION = 1  # bump when the build's output changes for the same inputs
STORED_PEAK = 0.99
DUPLICATE_CORRELATION = 0.95
SPLITS = ("train", "val", "test")
AMBIENCE = "ambience"


@dataclass(frozen=True)
class Source:
    """One row of the allow-list: files of a package that serve a class (or the ambience)."""

    cls: str  # one of labels.CLASSES, or AMBIENCE
    package: str  # Debian package, or "keebsound" (PyPI)
    patterns: tuple[str, ...]  # globs relative to the package's root; "X.rcc::glob" looks inside a Qt resource
    real: str  # how sure we are it is a real recording: certain | real | likely | probably | guess | unsure
    note: str = ""  # what it is when it only stands in for the class (a substitute), or the ambience kind
    cut: str = "gate"  # "gate": split on silences | "file": one event per file (pieces of max_event_s)
    min_gap_s: float = 0.15  # gate: shorter silences do not end an event
    max_event_s: float = 5.0
    max_files: int | None = None  # keep this many files (chosen by a hash of the path) of a huge source
    exclude: str = ""  # files whose path (relative to the root) matches this glob are left out


_H2 = "usr/share/hydrogen/data/drumkits/"
_LMMS = "usr/share/lmms/samples/"
_GC = "usr/share/gcompris-qt/rcc/"
_GCA = "gcompris/src/activities/"
_TUX = "usr/share/tuxpaint/stamps/"
_FILLETS = "usr/share/games/fillets-ng/sound/"
_LINCITY = "usr/share/games/lincity-ng/sounds/"
_WL = "usr/share/games/widelands/data/sound/"
_FD = "usr/share/sounds/freedesktop/stereo/"

SOURCES: tuple[Source, ...] = (
    # clapping
    Source(
        "clapping",
        "hydrogen-drumkits",
        (
            _H2 + "Gimme A Hand 1.0/HandClap-*.wav",
            _H2 + "The Black Pearl 1.0/HandClap*.wav",
            _H2 + "Millo_MultiLayered2/clap_0?*",
            _H2 + "Millo-Drums_v.1/clap_Dry*",
            _H2 + "Audiophob/29800__*",
        ),
        "likely",
    ),
    Source("clapping", "lmms-common", (_LMMS + "drums/clap0?.ogg",), "unsure"),
    Source("clapping", "lmms-common", (_LMMS + "misc/applause01.ogg",), "real", note="applause", cut="file"),
    Source(
        "clapping",
        "gcompris-qt-data",
        (_GC + "memory-sound.rcc::*/LRApplauses_1_LA_cut.ogg",),
        "real",
        note="applause",
        cut="file",
    ),
    # snapping_fingers
    Source("snapping_fingers", "hydrogen-drumkits", (_H2 + "Gimme A Hand 1.0/Fingersnap-*.wav",), "likely"),
    Source("snapping_fingers", "lmms-common", (_LMMS + "misc/snaph01.ogg",), "guess"),
    # speaking: single utterances, one event per file; the huge sources are thinned
    Source(
        "speaking",
        "asterisk-core-sounds-en-wav",
        ("usr/share/asterisk/sounds/en_US_f_Allison/**/*.wav",),
        "certain",
        cut="file",
        exclude="*/silence/*",
    ),
    Source("speaking", "tuxpaint-stamps-default", (_TUX + "**/*_desc_*.ogg",), "likely", cut="file", max_files=1200),
    Source("speaking", "ktuberling-data", ("usr/share/ktuberling/sounds/*/*",), "likely", cut="file", max_files=600),
    Source(
        "speaking",
        "klettres-data",
        ("usr/share/klettres/*/alpha/*.ogg", "usr/share/klettres/*/syllab/*.ogg"),
        "likely",
        cut="file",
        max_files=600,
    ),
    # whistling
    Source("whistling", "fillets-ng-data", (_FILLETS + "viking1/en/d1-z-p[12].ogg",), "guess", cut="file"),
    Source("whistling", "lincity-ng-data", (_LINCITY + "University3.wav",), "guess", cut="file"),
    Source(
        "whistling",
        "sound-icons",
        ("usr/share/sounds/sound-icons/pisk-*.wav",),
        "real",
        note="squeaks (substitute)",
        cut="file",
    ),
    Source(
        "whistling",
        "tuxpaint-stamps-default",
        (_TUX + "animals/birds/*.ogg",),
        "likely",
        note="bird song (substitute)",
        cut="file",
        exclude="*_desc_*",
    ),
    # playing_kendama: wood clacks
    Source(
        "playing_kendama",
        "hydrogen-drumkits",
        (
            _H2 + "Gimme A Hand 1.0/Clave-*.wav",
            _H2 + "Gimme A Hand 1.0/WoodBlock-*.wav",
            _H2 + "ForzeeStereo/Stick-*.wav",
            _H2 + "ForzeeStereo/RimClick-*.wav",
            _H2 + "Millo*/stick_Woody*",
            _H2 + "Millo_MultiLayered2/rim_0?*",
            _H2 + "The Black Pearl 1.0/PearlSideStick-*.wav",
        ),
        "real",
        note="wood clacks",
    ),
    Source(
        "playing_kendama",
        "gcompris-qt-data",
        (_GC + "instruments.rcc::*/castanets.ogg",),
        "real",
        note="castanets",
        min_gap_s=0.04,
    ),
    Source(
        "playing_kendama",
        "lmms-common",
        (
            _LMMS + "drums/wood01.ogg",
            _LMMS + "drums/clav0?.ogg",
            _LMMS + "drums/sidestick01.ogg",
            _LMMS + "drums/rim01.ogg",
        ),
        "probably",
        note="wood clacks",
    ),
    # clicking
    Source("clicking", "sound-theme-freedesktop", (_FD + "camera-shutter.oga",), "likely", cut="file"),
    Source("clicking", "tuxpaint-stamps-default", (_TUX + "hobbies/camera_35mm.ogg",), "likely", cut="file"),
    Source("clicking", "gnome-audio", ("usr/share/sounds/gtk-events/clicked.wav",), "unsure"),
    Source("clicking", "aisleriot", ("usr/share/aisleriot/sounds/click.ogg",), "unsure"),
    Source("clicking", "lincity-ng-data", (_LINCITY + "Click.wav",), "unsure"),
    Source("clicking", "widelands-data", (_WL + "click.ogg",), "unsure"),
    Source("clicking", "fillets-ng-data", (_FILLETS + "corridor/en/ch-x-click?.ogg",), "unsure"),
    Source(
        "clicking",
        "gcompris-qt-data",
        (_GC + "core.rcc::*/audioclick.wav", _GC + "*.rcc::*/resource/click.wav"),
        "unsure",
    ),
    # typing: one keystroke (press and release) per file
    Source("typing", "keebsound", ("keeb/sounds/gateron-red/*.mp3",), "real", cut="file"),
    Source(
        "typing",
        "fillets-ng-data",
        (_FILLETS + "linux/en/key*.ogg", _FILLETS + "linux/en/enter*.ogg", _FILLETS + "linux/en/space*.ogg"),
        "likely",
        cut="file",
    ),
    # knocking: knocks a few hundred ms apart stay one event
    Source("knocking", "gcompris-qt-data", (_GC + "melody.rcc::*/knock.wav",), "real", min_gap_s=0.6),
    Source(
        "knocking",
        "hydrogen-drumkits",
        (_H2 + "Gimme A Hand 1.0/CajonSlaps-*.wav", _H2 + "Gimme A Hand 1.0/CajonThumps-*.wav"),
        "real",
        note="hand on a wooden box (substitute)",
    ),
    # hammering
    Source(
        "hammering",
        "widelands-data",
        (_WL + "hammering/*.ogg", _WL + "smiths/*.ogg", _WL + "stonecutting/*.ogg"),
        "real",
        min_gap_s=0.25,
    ),
    Source(
        "hammering",
        "tuxpaint-stamps-default",
        (_TUX + "household/tools/hammer.ogg", _TUX + "household/tools/mallet_metal.ogg"),
        "likely",
        min_gap_s=0.25,
    ),
    Source("hammering", "gcompris-qt-data", (_GC + "mining.rcc::*/pickaxe.wav",), "likely", min_gap_s=0.25),
    # the thin ones
    Source("paper_ripping", "tuxpaint-stamps-default", (_TUX + "seasonal/christmas/gift.ogg",), "guess", cut="file"),
    Source("plastic_crumpling", "sound-theme-freedesktop", (_FD + "trash-empty.oga",), "guess", cut="file"),
    Source(
        "plastic_crumpling", "yaru-theme-sound", ("usr/share/sounds/Yaru/stereo/trash-empty.oga",), "guess", cut="file"
    ),
    Source(
        "paper_shaking",
        "gnome-audio",
        ("usr/share/sounds/card_shuffle.wav",),
        "real",
        note="playing cards (substitute)",
        cut="file",
    ),
    Source(
        "paper_shaking",
        "kpat",
        ("usr/share/kpat/sounds/card-down.ogg", "usr/share/kpat/sounds/card-pickup.ogg"),
        "real",
        note="playing cards (substitute)",
        cut="file",
    ),
    Source(
        "paper_shaking",
        "aisleriot",
        ("usr/share/aisleriot/sounds/slide.ogg",),
        "real",
        note="playing cards (substitute)",
        cut="file",
    ),
    Source(
        "paper_shaking",
        "gcompris-qt-data",
        (_GC + "memory.rcc::*/card_flip.wav",),
        "real",
        note="playing cards (substitute)",
        cut="file",
    ),
    Source(
        "stick_dropping",
        "gcompris-qt-data",
        (_GC + "memory-sound.rcc::*/LRObject_falling_0?_LA.ogg",),
        "real",
        note="objects falling and bouncing (substitute)",
        cut="file",
    ),
    Source(
        "stick_dropping",
        "widelands-data",
        (_WL + "other/falling_tools_0?.ogg",),
        "real",
        note="objects falling and bouncing (substitute)",
        cut="file",
    ),
    Source(
        "peanut_breaking",
        "tuxpaint-stamps-default",
        (_TUX + "seasonal/christmas/hard_candy.ogg", _TUX + "food/fruit/apple_red.ogg"),
        "likely",
        note="crunch, bite (substitute)",
        cut="file",
    ),
    # ambience (scenarios 2 and 3, augmentation); note = its category (SoundBank.ambience: row["category"])
    *(
        Source(
            AMBIENCE, "lincity-ng-data", (_LINCITY + f"{stem}*.wav",), "likely", note=kind, cut="file", max_event_s=60.0
        )
        for stem, kind in (
            ("Trafic", "traffic"),
            ("SportsCroud", "crowd"),
            ("Market", "crowd"),
            ("School", "children"),
            ("Green", "nature"),
            ("Water", "water"),
            ("Industry", "machine"),
        )
    ),
    *(
        Source(
            AMBIENCE,
            "gcompris-qt-data",
            (_GC + f"memory-sound.rcc::*/LR{stem}*",),
            "real",
            note=kind,
            cut="file",
            max_event_s=60.0,
        )
        for stem, kind in (
            ("Rain_in_garden", "weather"),
            ("Factory_noise_0", "machine"),
            ("FrogsInPondDuringStorm", "weather"),
            ("Train_slowing_down", "traffic"),
        )
    ),
    Source(
        AMBIENCE,
        "lmms-common",
        (_LMMS + "misc/raving_crowd01.ogg",),
        "real",
        note="crowd",
        cut="file",
        max_event_s=60.0,
    ),
    Source(
        AMBIENCE, "lmms-common", (_LMMS + "misc/breath01.ogg",), "real", note="breath", cut="file", max_event_s=60.0
    ),
    *(
        Source(
            AMBIENCE,
            "tuxpaint-stamps-default",
            (_TUX + f"household/{stem}.ogg",),
            "likely",
            note="appliance",
            cut="file",
            max_event_s=60.0,
        )
        for stem in ("vacuum_cleaner", "Washing-machine", "kettle", "toilet")
    ),
    *(
        Source(AMBIENCE, "widelands-data", (_WL + f"{d}/*.ogg",), "real", note=kind, cut="file", max_event_s=60.0)
        for d, kind in (
            ("barbarians/taverns", "indoor"),
            ("empire/taverns", "indoor"),
            ("mill", "machine"),
            ("sawmill", "machine"),
            ("animals", "nature"),
        )
    ),
    *(
        Source(
            AMBIENCE,
            "7kaa-data",
            (f"usr/share/games/7kaa/SOUND/{n}.WAV",),
            "likely",
            note="weather",
            cut="file",
            max_event_s=60.0,
        )
        for n in ("WIND", "RAIN", "THUNDER", "FIRE")
    ),
)

# Packages installed with apt; the others are unpacked under the sources dir (apt-get download +
# dpkg -x; widelands-data: its sound folder only) or, for keebsound, pip-installed.
UNPACKED = ("kpat", "gnome-audio", "aisleriot", "7kaa-data", "widelands-data")
PIP = ("keebsound",)
# The small packages CI installs to build a real bank inside the suite's time (~13 MB download).
CI_PACKAGES = ("sound-theme-freedesktop", "yaru-theme-sound", "sound-icons", "lmms-common")
PRESETS = ("ci", "full")
# Licences read by hand where the copyright file is not machine-readable (or, for keebsound, from
# its PyPI metadata): (package, glob on the file's path, licence); the first match wins.
_LICENCE_BY_HAND = (
    ("fillets-ng-data", "*", "GPL-2+"),
    ("keebsound", "*", "MIT"),
    ("gnome-audio", "*/gtk-events/*", "CC-BY-SA-2.0"),
    ("gnome-audio", "*", "unstated: /usr/share/doc/gnome-audio/copyright does not list this file"),
)


def default_bank_dir(cache_dir: Path) -> Path:
    """Where ``dualcam-rt soundbank build`` puts the bank unless told otherwise."""
    return Path(cache_dir) / "soundbank"


def default_sources_dir(cache_dir: Path) -> Path:
    """Where ``make soundbank`` unpacks the packages it does not install with apt."""
    return Path(cache_dir) / "sound-sources"


def preset_sources(preset: str) -> tuple[Source, ...]:
    """The sources a preset builds from; BadInput for an unknown preset."""
    if preset not in PRESETS:
        raise BadInput(f"unknown sound bank preset {preset!r}; known: {', '.join(PRESETS)}")
    return tuple(s for s in SOURCES if preset == "full" or s.package in CI_PACKAGES)


# ---------------------------------------------------------------------------------- finding files


@dataclass(frozen=True)
class PackageRoots:
    """Where installed packages are: ``system`` ("/" normally) for apt-installed ones,
    ``sources_dir/<package>/`` for unpacked ones (either may hold any package), and the Python
    path (or ``sources_dir/keebsound/``) for keebsound."""

    sources_dir: Path
    system: Path = Path("/")

    def root(self, package: str) -> Path | None:
        """The directory the package's paths are relative to, or None when it is not installed."""
        if package in PIP:
            local = self.sources_dir / package
            if (local / "keeb").is_dir():
                return local
            if self.system == Path("/"):
                spec = importlib.util.find_spec("keeb")
                if spec and spec.submodule_search_locations:
                    return Path(next(iter(spec.submodule_search_locations))).parent
            return None
        for root in (self.sources_dir / package, self.system):
            if (root / "usr/share/doc" / package / "copyright").is_file():
                return root
        return None


def install_command(packages: Sequence[str], sources_dir: Path) -> str:
    """The shell commands that install ``packages`` where ``PackageRoots`` finds them."""
    apt = [p for p in packages if p not in UNPACKED and p not in PIP]
    parts = []
    if apt:
        parts.append("apt-get install -y --no-install-recommends " + " ".join(apt))
    for p in packages:
        if p == "widelands-data":
            parts.append(
                f"apt-get download widelands-data && mkdir -p {sources_dir}/widelands-data && dpkg-deb --fsys-tarfile "
                f"widelands-data_*.deb | tar -x -C {sources_dir}/widelands-data --wildcards "
                "'./usr/share/games/widelands/data/sound/*' './usr/share/doc/widelands-data/*'"
            )
        elif p in UNPACKED:
            parts.append(f"apt-get download {p} && dpkg -x {p}_*.deb {sources_dir}/{p}")
        elif p in PIP:
            parts.append(f"pip install --no-deps {p}")
    return " && ".join(parts)


class MissingPackages(BadInput):
    """Packages a preset needs are not installed."""


@dataclass(frozen=True)
class SourceFile:
    """One file to read: a path under a package root, or an entry inside a Qt resource file."""

    source: Source
    root: Path
    rel: str  # path relative to the root (for a resource: "<rcc path>::<entry>")

    @property
    def path(self) -> str:
        """The file's path as the manifest records it (absolute; "<rcc>::<entry>" for a resource)."""
        file, sep, entry = self.rel.partition("::")
        return f"{self.root / file}{sep}{entry}"

    def read(self) -> tuple[np.ndarray, int]:
        """(samples (n, channels) float32, sample rate) decoded by soundfile."""
        import soundfile as sf

        if "::" in self.rel:
            rcc, entry = self.rel.split("::")
            data = io.BytesIO(_rcc(self.root / rcc).read(entry))
            return sf.read(data, dtype="float32", always_2d=True)
        return sf.read(str(self.root / self.rel), dtype="float32", always_2d=True)


@lru_cache(maxsize=256)
def _rcc(path: Path) -> RccFile:
    return RccFile(path)


def _stable_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def find_files(sources: Sequence[Source], roots: PackageRoots) -> list[SourceFile]:
    """Every file of ``sources`` in source-table order (sorted within a source).

    Raises MissingPackages naming the install command when a package is not installed."""
    found = {s.package: roots.root(s.package) for s in sources}
    missing = sorted(p for p, r in found.items() if r is None)
    if missing:
        raise MissingPackages(
            f"sound bank sources not installed: {', '.join(missing)}; install them with: "
            f"{install_command(missing, roots.sources_dir)} (or: make soundbank)"
        )
    root_of = {p: r for p, r in found.items() if r is not None}
    files: list[SourceFile] = []
    seen: set[tuple[Path, str]] = set()
    for s in sources:
        root = root_of[s.package]
        rels: set[str] = set()
        for pattern in s.patterns:
            if "::" in pattern:
                rcc_glob, entry_glob = pattern.split("::")
                for rcc in sorted(root.glob(rcc_glob)):
                    try:
                        entries = _rcc(rcc).entries
                    except (OSError, BadInput):
                        entries = {}  # an unreadable resource file: its entries are not listed (recorded when read)
                        rels.add(f"{rcc.relative_to(root)}::{entry_glob}")
                    rels.update(f"{rcc.relative_to(root)}::{e}" for e in entries if fnmatch.fnmatchcase(e, entry_glob))
            else:
                rels.update(
                    str(p.relative_to(root))
                    for p in root.glob(pattern)
                    if p.is_file() and not (s.exclude and fnmatch.fnmatchcase(str(p.relative_to(root)), s.exclude))
                )
        chosen = sorted(rels)
        if s.max_files is not None and len(chosen) > s.max_files:
            chosen = sorted(sorted(chosen, key=lambda r: _stable_hash(f"{s.package}/{r}"))[: s.max_files])
        for rel in chosen:
            if (root, rel) not in seen:  # a file two rows match belongs to the first
                seen.add((root, rel))
                files.append(SourceFile(s, root, rel))
    return files


# ---------------------------------------------------------------------------------- licences


def _glob_regex(pattern: str) -> re.Pattern:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.strip())
    return re.compile(f"(?:^|.*/){body}$")


@lru_cache(maxsize=64)
def _copyright_paragraphs(path: Path) -> tuple[tuple[tuple[re.Pattern, ...], str], ...]:
    """(Files patterns, licence) of each paragraph of a machine-readable (DEP-5) copyright file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ()
    out = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields and "license" in fields:
            licence = fields["license"].split("  ")[0].strip()
            out.append((tuple(_glob_regex(p) for p in fields["files"].split()), licence))
    return tuple(out)


def licence_of(package: str, root: Path, rel: str) -> str:
    """The licence the package's copyright file gives the file at ``rel`` (last matching
    paragraph, DEP-5; patterns match the end of the installed path), else one read by hand."""
    key = rel.split("::")[-1]
    if package == "hydrogen-drumkits":  # the copyright file names the kit archives the folders come from
        key = "drumkits/" + Path(key).parent.name + ".h2drumkit"
    licence = None
    for patterns, lic in _copyright_paragraphs(root / "usr/share/doc" / package / "copyright"):
        if any(p.match(key) for p in patterns):
            licence = lic
    if licence is None:
        licence = next(
            (lic for pkg, pattern, lic in _LICENCE_BY_HAND if pkg == package and fnmatch.fnmatchcase(key, pattern)),
            f"see /usr/share/doc/{package}/copyright",
        )
    return licence


# ---------------------------------------------------------------------------------- signal steps

_FRAME = 128  # ~10 ms at 12,288 Hz


def _level_db(wave: np.ndarray) -> np.ndarray:
    """Level (dB re full scale) of consecutive 10 ms frames of ``wave``."""
    n = len(wave) // _FRAME
    frames = wave[: n * _FRAME].reshape(n, _FRAME).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def cut_events(wave: np.ndarray, source: Source) -> list[tuple[int, int]]:
    """(start, stop) sample spans of the events in ``wave`` (mono, 12,288 Hz); see the module doc."""
    db = _level_db(wave)
    if len(db) < 2 or not np.isfinite(db).all() or db.max() < -90:
        return []
    peak = db.max()
    max_len = int(source.max_event_s * SAMPLE_RATE)
    if source.cut == "file":
        active = np.flatnonzero(db > peak - 50)
        start, stop = active[0] * _FRAME, min(len(wave), (active[-1] + 1) * _FRAME)
        spans = [(a, min(a + max_len, stop)) for a in range(start, stop, max_len)]
        # a last piece under a second is no event of its own unless it is all there is
        return [sp for i, sp in enumerate(spans) if i == 0 or sp[1] - sp[0] >= SAMPLE_RATE]
    floor = np.percentile(db, 10)
    active = db > min(max(floor + 10, peak - 35), peak - 10)  # a short, all-loud sample has no floor
    runs: list[list[int]] = []
    gap_frames = max(1, int(source.min_gap_s * SAMPLE_RATE / _FRAME))
    for i in map(int, np.flatnonzero(active)):
        if runs and i - runs[-1][1] <= gap_frames:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    pre, post = 1, int(0.12 * SAMPLE_RATE / _FRAME)
    spans = []
    for k, (a, b) in enumerate(runs):
        if db[a : b + 1].max() < peak - 30:
            continue
        lo = max(0, a - pre) if k == 0 else max(a - pre, runs[k - 1][1] + 1)
        hi = min(len(db), b + 1 + post) if k == len(runs) - 1 else min(b + 1 + post, runs[k + 1][0] - pre)
        spans.append((lo * _FRAME, min(len(wave), hi * _FRAME, lo * _FRAME + max_len)))
    return spans


def normalise(event: np.ndarray) -> np.ndarray:
    """``event`` scaled to a peak of ``STORED_PEAK`` and rounded to 16 bits (what FLAC stores)."""
    peak = float(np.max(np.abs(event)))
    q = np.round(event / peak * STORED_PEAK * 32767) if peak > 0 else np.zeros_like(event)
    return (q / 32767).astype(np.float32)


def content_hash(event: np.ndarray) -> str:
    """Hash of a normalised event's 16-bit samples (the same recording gives the same hash)."""
    return hashlib.sha256(np.round(event * 32767).astype("<i2").tobytes()).hexdigest()[:20]


_COMPARE = SAMPLE_RATE  # samples of each event compared for duplicates (the first second)
_COMPARE_FFT = 16_384  # > _COMPARE + the largest lag: the lags that matter do not wrap around


class _Print:
    """What duplicate detection compares of an event: its length, a unit vector of its log band
    energies (24 bands, mean removed: a gain change leaves it unchanged), and the spectrum and
    norm of its first second (for the cross-correlation)."""

    def __init__(self, event: np.ndarray):
        self.length = len(event)
        spec = np.abs(np.fft.rfft(event[: 4 * SAMPLE_RATE], 8192)) ** 2
        bands = np.log10(np.add.reduceat(spec, np.linspace(1, len(spec) - 1, 25).astype(int)[:-1]) + 1e-12)
        bands -= bands.mean()
        self.bands = bands / (np.linalg.norm(bands) + 1e-12)
        head = event[:_COMPARE].astype(np.float64)
        self.norm = float(np.linalg.norm(head))
        self.spectrum = np.fft.rfft(head, _COMPARE_FFT)


def _same_take(a: _Print, b: _Print, max_lag: int = 60) -> bool:
    """Whether two normalised events of similar length and band energies (``_Kept.twin`` checks
    those) are one take: a peak normalised cross-correlation of their first seconds within
    ``max_lag`` samples (~5 ms) of at least DUPLICATE_CORRELATION."""
    xc = np.fft.irfft(a.spectrum * np.conj(b.spectrum), _COMPARE_FFT)
    lags = np.concatenate([xc[: max_lag + 1], xc[-max_lag:]])
    return float(np.max(np.abs(lags))) >= DUPLICATE_CORRELATION * a.norm * b.norm


class _Kept:
    """The kept events of one class, with their lengths and band vectors in arrays so that the
    pre-filter is one matrix product per new event."""

    def __init__(self):
        self.prints: list[_Print] = []
        self.recordings: list[_Recording] = []
        self.lengths = np.zeros(64)
        self.bands = np.zeros((64, 24))

    def add(self, fp: _Print, recording: _Recording) -> None:
        n = len(self.prints)
        if n == len(self.lengths):  # grow by doubling
            self.lengths = np.concatenate([self.lengths, np.zeros(n)])
            self.bands = np.concatenate([self.bands, np.zeros((n, 24))])
        self.lengths[n], self.bands[n] = fp.length, fp.bands
        self.prints.append(fp)
        self.recordings.append(recording)

    def twin(self, fp: _Print) -> _Recording | None:
        """The recording of a kept event that is the same take as ``fp``, or None."""
        n = len(self.prints)
        ratio = self.lengths[:n] / fp.length
        # Hydrogen's velocity layers of one take: lengths within 16 %, band correlations 0.90-0.99
        candidates = np.flatnonzero((ratio >= 0.8) & (ratio <= 1.25) & (self.bands[:n] @ fp.bands > 0.9))
        return next((self.recordings[i] for i in candidates if _same_take(self.prints[i], fp)), None)


# ---------------------------------------------------------------------------------- the build


@dataclass
class _Recording:
    file: SourceFile
    original_rate: int
    channels: int
    duration_s: float
    licence: str
    events: list[dict] = field(default_factory=list)  # {"onset_s", "audio", "hash"}
    split: str = "train"

    @property
    def cls(self) -> str:
        return self.file.source.cls

    @property
    def id(self) -> str:
        return _stable_hash(f"{self.file.source.package}:{self.file.rel}")[:16]


def _assign_splits(recordings: list[_Recording]) -> None:
    """Splits per recording within one class (see the module doc)."""
    ranked = sorted(recordings, key=lambda r: r.id)
    for rec in ranked:
        rec.split = "train"
    n = len(ranked)
    if n == 2:  # the one with fewer events is the test recording
        min(ranked, key=lambda r: (len(r.events), r.id)).split = "test"
    if n < 3:
        return
    n_test = n_val = max(1, round(0.15 * n))
    # a recording holding over a quarter of the class's events (castanets: ~40 clacks) stays in
    # train when there are enough others, so that one recording does not make up a split
    total = sum(len(r.events) for r in ranked)
    small = [r for r in ranked if len(r.events) <= 0.25 * total]
    held_out = (small if len(small) >= n_test + n_val else ranked)[: n_test + n_val]
    for k, rec in enumerate(held_out):
        rec.split = "test" if k < n_test else "val"


def _write_flac(path: Path, audio: np.ndarray) -> bool:
    """Write ``audio`` (normalised, see ``normalise``) as 16-bit FLAC unless the file already
    holds exactly these samples; whether it wrote."""
    import soundfile as sf

    pcm = np.round(audio * 32767).astype(np.int16)  # int16 both ways: no float scaling convention in between
    if path.exists():
        try:
            old, rate = sf.read(str(path), dtype="int16")
            if rate == SAMPLE_RATE and np.array_equal(old, pcm):
                return False
        except (RuntimeError, OSError, sf.LibsndfileError):
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.flac")
    sf.write(str(tmp), pcm, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    tmp.replace(path)
    return True


def build_bank(
    out_dir: str | Path,
    roots: PackageRoots,
    preset: str = "full",
    progress: Callable[[int, int], None] | None = None,
    sources: Sequence[Source] | None = None,
) -> dict:
    """Build the bank of ``preset`` (or of ``sources``, when given) into ``out_dir`` (see the
    module doc); returns the manifest.

    Raises MissingPackages (one line with the install command) when a source is not installed."""
    import soundfile as sf

    out = Path(out_dir)
    if sources is None:
        sources = preset_sources(preset)
    else:
        preset = "custom"
    files = find_files(sources, roots)
    recordings: list[_Recording] = []
    skipped: list[dict] = []
    for i, f in enumerate(files):
        try:
            samples, rate = f.read()
            if samples.size == 0:
                raise ValueError("no samples")
            if not np.isfinite(samples).all():
                raise ValueError("samples are not finite")
        except (RuntimeError, OSError, ValueError, BadInput, sf.LibsndfileError) as err:
            skipped.append({"package": f.source.package, "path": f.path, "reason": str(err).splitlines()[0][:200]})
        else:
            mono = samples.mean(axis=1)
            rec = _Recording(
                f, int(rate), samples.shape[1], round(len(mono) / rate, 4), licence_of(f.source.package, f.root, f.rel)
            )
            wave = resample(mono, int(rate), SAMPLE_RATE)
            for start, stop in cut_events(wave, f.source):
                audio = normalise(wave[start:stop])
                rec.events.append(
                    {"onset_s": round(float(start) / SAMPLE_RATE, 4), "audio": audio, "hash": content_hash(audio)}
                )
            if not rec.events:
                skipped.append(
                    {"package": f.source.package, "path": f.path, "reason": "silent: no event above the noise"}
                )
            else:
                recordings.append(rec)
        if progress:
            progress(i + 1, len(files))

    duplicates = _remove_duplicates(recordings)
    kept = [r for r in recordings if r.events]
    by_class: dict[str, list[_Recording]] = defaultdict(list)
    for r in kept:
        by_class[r.cls].append(r)
    for recs in by_class.values():
        _assign_splits(recs)

    rec_rows, event_rows, written = [], [], set()
    for r in kept:
        folder = Path(AMBIENCE) if r.cls == AMBIENCE else Path("events") / r.cls
        rec_rows.append(
            {
                "id": r.id,
                "class": r.cls,
                "package": r.file.source.package,
                "path": r.file.path,
                "licence": r.licence,
                "real": r.file.source.real,
                "note": r.file.source.note,
                "original_rate": r.original_rate,
                "channels": r.channels,
                "duration_s": r.duration_s,
                "content_hash": content_hash(np.concatenate([e["audio"] for e in r.events])),
                "split": r.split,
                "events": len(r.events),
            }
        )
        for e in r.events:
            rel = folder / f"{e['hash']}.flac"
            _write_flac(out / rel, e["audio"])
            written.add(rel.as_posix())
            event_rows.append(
                {
                    "file": rel.as_posix(),
                    "recording": r.id,
                    "class": r.cls,
                    "split": r.split,
                    "onset_s": e["onset_s"],
                    "duration_s": round(len(e["audio"]) / SAMPLE_RATE, 4),
                    "content_hash": e["hash"],
                }
            )
    for stale in [*out.glob("events/*/*.flac"), *out.glob(f"{AMBIENCE}/*.flac")]:  # left by an earlier build
        if stale.relative_to(out).as_posix() not in written:
            stale.unlink()
    for folder in out.glob("events/*"):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()

    manifest: dict[str, Any] = {
        "version": BANK_VERSION,
        "preset": preset,
        "sample_rate": SAMPLE_RATE,
        "normalisation": f"peak: every event scaled to a peak of {STORED_PEAK} and stored as 16-bit FLAC",
        "split_rule": "per source recording, ranked by a hash of package and path within each class: >= 3 recordings: "
        "15 % val and 15 % test (at least one each; recordings with over a quarter of the class's events "
        "stay in train when enough others exist); 2: one train, one test (the one with fewer events); "
        "1: train only",
        "recordings": sorted(rec_rows, key=lambda r: (r["class"], r["package"], r["path"])),
        "events": sorted(event_rows, key=lambda e: (e["class"], e["recording"], e["onset_s"])),
        "duplicates": sorted(duplicates, key=lambda d: (d["class"], d["path"], d["onset_s"])),
        "skipped": sorted(skipped, key=lambda s: s["path"]),
        "summary": summarise(rec_rows),
    }
    manifest["notes"] = _notes(manifest["summary"])
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    path = out / "manifest.json"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return manifest


def _remove_duplicates(recordings: list[_Recording]) -> list[dict]:
    """Drop repeated events in place (exact content, or one take at another gain); the dropped ones."""
    dropped: list[dict] = []
    seen_hash: dict[str, _Recording] = {}
    kept: dict[str, _Kept] = defaultdict(_Kept)
    for r in recordings:
        keep = []
        for e in r.events:
            twin = seen_hash.get(e["hash"])
            reason = "same content"
            if twin is None:
                fp = _Print(e["audio"])
                twin, reason = kept[r.cls].twin(fp), "same take at another gain"
            if twin is None:
                seen_hash[e["hash"]] = r
                kept[r.cls].add(fp, r)
                keep.append(e)
            else:
                dropped.append(
                    {
                        "class": r.cls,
                        "package": r.file.source.package,
                        "path": r.file.path,
                        "onset_s": e["onset_s"],
                        "duplicate_of": twin.file.path,
                        "reason": reason,
                    }
                )
        r.events = keep
    return dropped


def summarise(recording_rows: Sequence[dict]) -> dict:
    """Per class (and the ambience): real recordings and events, in all and per split."""
    out: dict[str, dict] = {}
    for cls in (*CLASSES, AMBIENCE):
        rows = [r for r in recording_rows if r["class"] == cls]
        out[cls] = {
            "recordings": len(rows),
            "events": sum(r["events"] for r in rows),
            "packages": sorted({r["package"] for r in rows}),
            **{f"{s}_recordings": sum(r["split"] == s for r in rows) for s in SPLITS},
            **{f"{s}_events": sum(r["events"] for r in rows if r["split"] == s) for s in SPLITS},
        }
    return out


def _notes(summary: dict) -> dict:
    notes = {}
    for cls, s in summary.items():
        if s["recordings"] == 0:
            notes[cls] = "no real recording in this bank: procedural events only"
        elif s["recordings"] == 1:
            notes[cls] = (
                "one real recording, train only: validation and test takes of this class come from "
                "augmented or procedural events"
            )
        elif s["test_recordings"] == 0 or s["val_recordings"] == 0:
            notes[cls] = (
                f"{s['recordings']} real recordings: no "
                + " and no ".join(k for k in ("val", "test") if s[f"{k}_recordings"] == 0)
                + " recording; those takes come from augmented or procedural events"
            )
    return notes


# ---------------------------------------------------------------------------------- reading a bank


@dataclass(frozen=True)
class Take:
    """One event of the bank: ``audio`` (n,) float32 at 12,288 Hz with a peak of 1, and its
    manifest rows (the event's, joined with its recording's: id, package, path, licence, real)."""

    audio: np.ndarray
    row: dict

    @property
    def recording(self) -> str:
        return self.row["recording"]

    @property
    def package(self) -> str:
        return self.row["package"]

    @property
    def licence(self) -> str:
        return self.row["licence"]


class SoundBank:
    """A built bank: its manifest and lazily loaded takes."""

    def __init__(self, root: Path, manifest: dict):
        self.root = root
        self.manifest = manifest
        self._recordings = {r["id"]: r for r in manifest["recordings"]}
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, root: str | Path) -> SoundBank:
        """The bank in ``root``; NotFound when it holds no manifest, BadInput when that is unreadable."""
        root = Path(root)
        path = root / "manifest.json"
        if not path.is_file():
            raise NotFound(f"no sound bank in {root} (no manifest.json): build one with `dualcam-rt soundbank build`")
        try:
            manifest = json.loads(path.read_text())
            manifest["events"], manifest["recordings"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise BadInput(f"unreadable sound bank manifest {path}: {err}") from None
        return cls(root, manifest)

    def _rows(self, cls: str, split: str | None) -> Iterator[dict]:
        if split is not None and split not in SPLITS:
            raise BadInput(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        for e in self.manifest["events"]:
            if e["class"] == cls and (split is None or e["split"] == split):
                rec = self._recordings[e["recording"]]
                row = {**e, **{k: rec[k] for k in ("package", "path", "licence", "real", "note")}}
                if cls == AMBIENCE:
                    row["category"] = rec["note"]
                yield row

    def _audio(self, rel: str) -> np.ndarray:
        import soundfile as sf

        if rel not in self._cache:
            try:
                audio, rate = sf.read(str(self.root / rel), dtype="float32")
            except (RuntimeError, OSError, sf.LibsndfileError) as err:
                raise BadInput(f"sound bank file {self.root / rel} unreadable ({err}): rebuild the bank") from None
            if rate != SAMPLE_RATE:
                raise BadInput(
                    f"sound bank file {self.root / rel} is at {rate} Hz, not {SAMPLE_RATE}: rebuild the bank"
                )
            peak = float(np.max(np.abs(audio))) or 1.0
            self._cache[rel] = audio / peak
        return self._cache[rel]

    def takes(self, cls: str, split: str | None = None) -> list[Take]:
        """The takes of class ``cls`` in ``split`` (all splits when None), in manifest order."""
        class_index(cls)  # BadInput for an unknown class
        return [Take(self._audio(r["file"]), r) for r in self._rows(cls, split)]

    def ambience(self, split: str | None = None) -> list[Take]:
        """The ambience recordings in ``split`` (all when None); ``row["category"]`` says what they are
        (traffic, crowd, children, nature, water, machine, weather (7kaa's fire included), appliance, indoor,
        breath)."""
        return [Take(self._audio(r["file"]), r) for r in self._rows(AMBIENCE, split)]

    def summary(self) -> dict:
        """Per class and the ambience: recordings and events, in all and per split."""
        return self.manifest["summary"]
