"""``mic://default`` or ``mic://NAME``: one real microphone (sounddevice), optionally a webcam.

Query options: ``camera=N`` adds OpenCV camera N (frames resized to 640x480); ``rate=R`` captures
at R Hz instead of 12,288 Hz (used when the sound card refuses 12,288 Hz, which is tried first);
``full_scale_pa`` is the sound pressure of digital full scale (default 20 Pa, 120 dB SPL, as for
the DualCam's MEMS capsules; a sound card's true sensitivity is rarely known).

Audio comes out as SensorFrames of (1, 1024) float32 at 12,288 Hz: captured blocks are resampled
when needed (``dsp.resample.StreamResampler``: the one polyphase filter, chunk by chunk, so block
edges are seamless) and cut into 1024-sample blocks on the microphone's own sample clock. Video frames
are timestamped on that clock from their capture time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import numpy as np

from ..dsp.resample import StreamResampler
from ..errors import BadInput, DeviceError, NotFound
from ..frame import SensorFrame
from ..geometry import BLOCK_SAMPLES, FRAME_HEIGHT, FRAME_WIDTH, SAMPLE_RATE
from .base import Device

DEFAULT_FULL_SCALE_PA = 20.0
QUEUE_BLOCKS = 256  # captured chunks buffered before new ones are dropped (PortAudio's are short)
STALL_S = 5.0  # no audio for this long is a failure (audio servers can take over a second to start)


def import_sounddevice():
    """The sounddevice module; DeviceError with the fix when PortAudio (or the package) is missing."""
    try:
        import sounddevice
    except OSError as err:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise DeviceError(f"mic:// needs the PortAudio library ({err}); install it, e.g. "
                          "`apt-get install libportaudio2`") from None
    except ImportError:
        raise DeviceError("mic:// needs the 'audio' extra: pip install 'dualcam-rt[audio]'") from None
    return sounddevice


_open_streams = 0  # PortAudio can only rescan its devices when no stream is open
_streams_lock = threading.Lock()


def query_input(sd, name: str | None) -> dict:
    """PortAudio's input device ``name`` (None: the default), rescanning once when it is missing.

    PortAudio lists devices once, when it starts; the rescan finds a microphone plugged in, or an
    audio server started, after this process imported sounddevice."""
    for attempt in range(2):
        try:
            return sd.query_devices(name, "input")
        except ValueError as err:
            with _streams_lock:
                if attempt or _open_streams:
                    inputs = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
                    raise NotFound(f"no input device {name or 'default'!r} ({err}); inputs: "
                                   f"{', '.join(inputs) or 'none'}") from None
                sd._terminate()  # sounddevice's documented way to rescan (no public API yet)
                sd._initialize()
        except sd.PortAudioError as err:
            raise DeviceError(f"audio system unavailable: {err}") from None
    raise AssertionError("unreachable")


class Camera:
    """An OpenCV camera read in a thread; ``latest()`` gives the newest (monotonic time, BGR frame)."""

    def __init__(self, index: int):
        import cv2

        self._cv2 = cv2
        self.capture = cv2.VideoCapture(index)
        if not self.capture.isOpened():
            raise DeviceError(f"camera {index} cannot be opened")
        self._latest: tuple[float, np.ndarray] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mic-camera", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ok, frame = self.capture.read()
            if not ok:
                time.sleep(0.05)
                continue
            if frame.shape[:2] != (FRAME_HEIGHT, FRAME_WIDTH):
                frame = self._cv2.resize(frame, (FRAME_WIDTH, FRAME_HEIGHT))
            self._latest = (time.monotonic(), frame)

    def latest(self) -> tuple[float, np.ndarray] | None:
        return self._latest

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.capture.release()


class MicDevice(Device):
    kind = "mic"

    def __init__(self, uri: str, name: str | None = None, camera: int | None = None, rate: int | None = None,
                 full_scale_pa: float = DEFAULT_FULL_SCALE_PA):
        super().__init__(uri, channels=1)
        self.sd = import_sounddevice()
        self.name = name
        self.full_scale_pa = full_scale_pa
        self.info = query_input(self.sd, name)
        self.capture_rate = int(rate or self._supported_rate())
        self._stream = None
        self._camera = Camera(camera) if camera is not None else None
        self._closed = False

    def _supported_rate(self) -> int:
        try:
            self.sd.check_input_settings(self.name, channels=1, samplerate=SAMPLE_RATE, dtype="float32")
            return SAMPLE_RATE
        except Exception:  # PortAudio says "invalid sample rate" in several ways
            return int(self.info["default_samplerate"])

    @classmethod
    def from_uri(cls, uri: str, location: str, query: dict, **options) -> MicDevice:
        name = None if location in ("", "default") else location
        kwargs: dict = {"name": name}
        try:
            if query.get("camera", "") != "":
                kwargs["camera"] = int(query["camera"])
            if query.get("rate"):
                kwargs["rate"] = int(query["rate"])
            if query.get("full_scale_pa"):
                kwargs["full_scale_pa"] = float(query["full_scale_pa"])
        except ValueError:
            raise BadInput(f"camera and rate must be integers and full_scale_pa a number in {uri!r}") from None
        kwargs.update(options)
        return cls(uri, **kwargs)

    def frames(self) -> Iterator[SensorFrame]:
        chunks: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)

        def callback(indata, n_frames, time_info, status):
            if status.input_overflow:
                self.stats.extra["input_overflows"] = self.stats.extra.get("input_overflows", 0) + 1
            try:
                chunks.put_nowait(indata[:, 0].copy())
            except queue.Full:  # the consumer is too slow: drop, and say so
                self.stats.lost_samples += n_frames
                self.stats.lost_packets += 1

        resample = StreamResampler(self.capture_rate, SAMPLE_RATE)
        pending = np.zeros(0, np.float32)
        first_sample = index = 0
        global _open_streams
        with _streams_lock:
            try:
                stream = self.sd.InputStream(device=self.name, channels=1, samplerate=self.capture_rate,
                                             dtype="float32", blocksize=0, callback=callback)
            except self.sd.PortAudioError as err:
                raise DeviceError(f"{self.uri}: cannot open capture: {err}") from None
            try:
                stream.start()
            except self.sd.PortAudioError as err:
                stream.close()
                raise DeviceError(f"{self.uri}: cannot start capture: {err}") from None
            self._stream = stream
            _open_streams += 1
        clock_start = time.monotonic()  # the audio clock's sample 0, on the monotonic clock
        try:
            while not self._closed:
                try:
                    chunk = chunks.get(timeout=STALL_S)
                except queue.Empty:
                    if self._closed:
                        return
                    raise DeviceError(f"{self.uri}: no audio for {STALL_S:g} s") from None
                pending = np.concatenate([pending, resample(chunk)])
                while len(pending) >= BLOCK_SAMPLES:
                    block, pending = pending[:BLOCK_SAMPLES], pending[BLOCK_SAMPLES:]
                    video, video_ts = self._video(clock_start)
                    self.stats.audio_blocks += 1
                    yield SensorFrame(index=index, first_sample=first_sample,
                                      timestamp=first_sample / SAMPLE_RATE,
                                      audio=(block * self.full_scale_pa)[None, :], video=video,
                                      video_timestamp=video_ts)
                    index += 1
                    first_sample += BLOCK_SAMPLES
        finally:
            self._stop_stream()

    def _video(self, clock_start: float) -> tuple[np.ndarray | None, float | None]:
        latest = self._camera.latest() if self._camera else None
        if latest is None:
            return None, None
        self.stats.video_frames += 1
        return latest[1], latest[0] - clock_start

    def _stop_stream(self) -> None:
        global _open_streams
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()
            with _streams_lock:
                _open_streams -= 1

    def close(self) -> None:
        self._closed = True
        if self._camera is not None:
            self._camera.close()

    def describe(self) -> dict:
        return {**super().describe(), "input": self.info.get("name"), "capture_rate": self.capture_rate,
                "resampled": self.capture_rate != SAMPLE_RATE, "camera": self._camera is not None,
                "full_scale_pa": self.full_scale_pa}
