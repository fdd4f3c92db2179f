"""Beamforming recorded audio to an .npy of acoustic images, memory-bounded, with a progress bar.

Inputs: a session directory (read with ``sessions.open_session``) or an HDF5 file in
Acoular's layout (dataset ``time_data``, samples x channels, attribute ``sample_freq`` in Hz).
Output: ``np.lib.format.open_memmap`` array (frames, 36, 48, 512) float32 Pa^2, one frame per
1024-sample block (a trailing partial block is dropped), written batch by batch so memory stays
at one batch however long the recording.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np

from ..dsp.beamform import Beamformer
from ..errors import BadInput, NotFound
from ..geometry import Geometry
from ..sessions import open_session
from ..sessions.reader import recorded_geometry


class TimeData:
    """Audio blocks of a recording: ``n_frames`` blocks of (channels, nfft) float32 Pa."""

    def __init__(
        self, read: Callable[[int, int], np.ndarray], n_frames: int, channels: int, sample_rate: int, name: str
    ):
        self._read = read  # (first_frame, stop_frame) -> (channels, samples)
        self.n_frames, self.channels, self.sample_rate, self.name = n_frames, channels, sample_rate, name

    def blocks(self, start: int, stop: int, nfft: int) -> np.ndarray:
        """Frames [start, stop) as (frames, channels, nfft) float32."""
        audio = np.asarray(self._read(start, stop), dtype=np.float32)
        return audio.reshape(self.channels, stop - start, nfft).transpose(1, 0, 2)


def open_time_data(path: str | Path, stack: ExitStack, nfft: int) -> TimeData:
    """The recording at ``path`` (session directory or Acoular HDF5); closed when ``stack`` closes."""
    path = Path(path)
    if not path.exists():
        raise NotFound(f"no such file or session: {path}")
    if path.is_dir():
        session = stack.enter_context(open_session(path))
        return TimeData(
            lambda a, b: session.audio(a, b), session.n_ticks, session.channels, session.sample_rate, str(path)
        )
    try:
        h5 = stack.enter_context(h5py.File(path, "r"))
    except OSError as err:
        raise BadInput(f"{path} is not a readable HDF5 file: {err}") from err
    if "time_data" not in h5 or h5["time_data"].ndim != 2:
        raise BadInput(f"{path} has no 2-D 'time_data' dataset (samples x channels, Acoular's layout)")
    td = h5["time_data"]
    if "sample_freq" not in td.attrs:
        raise BadInput(f"{path}: 'time_data' has no 'sample_freq' attribute")
    return TimeData(
        lambda a, b: td[a * nfft : b * nfft].T,
        td.shape[0] // nfft,
        td.shape[1],
        int(round(float(td.attrs["sample_freq"]))),
        str(path),
    )


def _recording_geometry(path: str | Path, geometry: Geometry) -> Geometry:
    """A session directory's recorded array, rate and block size (``recorded_geometry``); ``geometry`` for a file."""
    if not Path(path).is_dir():
        return geometry
    with open_session(path) as session:
        return recorded_geometry(session.meta, geometry)


def check_compatible(data: TimeData, geometry: Geometry) -> None:
    """Raise BadInput unless the recording has the geometry's channels and sample rate."""
    if data.channels != geometry.n_mics:
        raise BadInput(f"{data.name} has {data.channels} channels; the geometry has {geometry.n_mics} microphones")
    if data.sample_rate != geometry.sample_rate:
        raise BadInput(
            f"{data.name} is sampled at {data.sample_rate} Hz; the beamformer needs {geometry.sample_rate} Hz"
        )
    if data.n_frames == 0:
        raise BadInput(f"{data.name} holds less than one {geometry.nfft}-sample block")


def beamform_recording(
    path: str | Path,
    out: str | Path,
    geometry: Geometry,
    backend: str = "auto",
    batch_frames: int = 64,
    progress: Callable[[int, int], None] | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[int, ...]:
    """Shape of the (frames, rows, cols, bins) float32 .npy written to ``out`` from the recording at
    ``path``: (frames, 36, 48, 512) for the DualCam. A session is beamformed with the array, rate
    and block size it recorded (``recorded_geometry``: a UMA-16 at 48 kHz gives 2000 bins); an HDF5
    file must have ``geometry``'s channels and rate.

    ``progress(done, total)`` is called with frame counts before the first batch and after each.
    """
    with ExitStack() as stack:
        geometry = _recording_geometry(path, geometry)
        data = open_time_data(path, stack, geometry.nfft)
        check_compatible(data, geometry)
        beamformer = Beamformer(geometry, backend=backend, batch_frames=batch_frames, cache_dir=cache_dir)
        shape = (data.n_frames, *geometry.grid_shape, geometry.n_bins)
        try:
            images = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=shape)
        except OSError as err:
            raise BadInput(f"cannot write {out}: {err}") from err
        if progress:
            progress(0, data.n_frames)
        for start in range(0, data.n_frames, batch_frames):
            stop = min(start + batch_frames, data.n_frames)
            blocks = data.blocks(start, stop, geometry.nfft)
            if beamformer.xp is np:
                beamformer.images(blocks, out=images[start:stop])  # straight into the file's pages
            else:
                images[start:stop] = beamformer.images(blocks)
            if progress:
                progress(stop, data.n_frames)
        images.flush()
        del images
    return shape
