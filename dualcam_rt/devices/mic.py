"""``mic://default`` or ``mic://NAME``: a real microphone or microphone array (sounddevice), optionally a webcam.

Query options: ``camera=N`` adds OpenCV camera N (frames resized to 640x480); ``rate=R`` captures
at R Hz; ``channels=N`` captures N channels (an array, e.g. a miniDSP UMA-16: ``channels=16&rate=48000``);
``map=I,J,...`` takes frame channel i from device channel map[i] (a permutation of 0..N-1, for a
driver whose order is not the geometry file's); ``full_scale_pa`` is the sound pressure of digital
full scale (default 20 Pa, 120 dB SPL, as for the DualCam's MEMS capsules; a sound card's true
sensitivity is rarely known).

One microphone (``channels=1``, the default) comes out as SensorFrames of (1, 1024) float32 at
12,288 Hz, the students' rate: captured blocks are resampled when needed (``rate=R`` captures at R
Hz, used when the card refuses 12,288 Hz, which is tried first; ``dsp.resample.StreamResampler``:
the one polyphase filter, chunk by chunk, so block edges are seamless). An array (``channels`` > 1)
is not resampled: it comes out at its own rate (``rate``, default the card's) in blocks of 1/12 s
(rate / 12 samples, so the rate must be a multiple of 12 Hz: 48,000 Hz gives (16, 4000) blocks and
FFT bins 12 Hz apart, as the DualCam's), ready for the beamformer at that rate.

Channel order: frame channel i is device channel i (or map[i]) and is microphone i of the geometry,
in the order of the MicGeom file's ``<pos>`` elements; ``dualcam-rt probe`` prints each channel's
level so that a user can tap each capsule and see which row moves. Blocks are cut on the sound
card's sample clock; video frames are timestamped on that clock from their capture time.
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
from ..geometry import FPS, FRAME_HEIGHT, FRAME_WIDTH, SAMPLE_RATE
from .base import Device

DEFAULT_FULL_SCALE_PA = 20.0
QUEUE_BLOCKS = 256  # captured chunks buffered before new ones are dropped (PortAudio's are short)
STALL_S = 5.0  # no audio for this long is a failure (audio servers can take over a second to start)


def import_sounddevice():
    """The sounddevice module; DeviceError with the fix when PortAudio (or the package) is missing."""
    try:
        import sounddevice
    except OSError as err:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise DeviceError(
            f"mic:// needs the PortAudio library ({err}); install it, e.g. `apt-get install libportaudio2`"
        ) from None
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
                    raise NotFound(
                        f"no input device {name or 'default'!r} ({err}); inputs: {', '.join(inputs) or 'none'}"
                    ) from None
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

    def __init__(
        self,
        uri: str,
        name: str | None = None,
        camera: int | None = None,
        rate: int | None = None,
        full_scale_pa: float = DEFAULT_FULL_SCALE_PA,
        channels: int = 1,
        channel_map: list[int] | None = None,
    ):
        if channels < 1:
            raise BadInput(f"channels must be at least 1, not {channels}")
        if channel_map is not None and sorted(channel_map) != list(range(channels)):
            raise BadInput(
                f"map must list each of the {channels} device channels 0..{channels - 1} once, not {channel_map}"
            )
        self.sd = import_sounddevice()
        self.name = name
        self.full_scale_pa = full_scale_pa
        self.info = query_input(self.sd, name)
        if channels > int(self.info["max_input_channels"]):
            raise BadInput(
                f"input {self.info['name']!r} has {self.info['max_input_channels']} channel(s), "
                f"not the {channels} asked for"
            )
        self.channel_map = channel_map
        if channels == 1:  # the students' microphone: resampled to the sensor rate
            self.capture_rate = int(rate or self._supported_rate())
            super().__init__(uri, channels=1)
        else:  # an array: its own rate, blocks of 1/12 s
            self.capture_rate = int(rate or self.info["default_samplerate"])
            if self.capture_rate % FPS:
                raise BadInput(
                    f"an array's rate must be a multiple of {FPS} Hz (a block is 1/{FPS} s), "
                    f"not {self.capture_rate}: e.g. rate=48000"
                )
            super().__init__(
                uri, channels=channels, sample_rate=self.capture_rate, block_samples=self.capture_rate // FPS
            )
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
            if query.get("channels"):
                kwargs["channels"] = int(query["channels"])
            if query.get("map"):
                kwargs["channel_map"] = [int(c) for c in query["map"].split(",")]
        except ValueError:
            raise BadInput(
                f"camera, rate and channels must be integers, map a list like 0,1,2 and full_scale_pa "
                f"a number in {uri!r}"
            ) from None
        kwargs.update(options)
        return cls(uri, **kwargs)

    def frames(self) -> Iterator[SensorFrame]:
        chunks: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)

        order = self.channel_map or list(range(self.channels))

        def callback(indata, n_frames, time_info, status):
            if status.input_overflow:
                self.stats.extra["input_overflows"] = self.stats.extra.get("input_overflows", 0) + 1
            try:
                chunks.put_nowait(indata[:, order].T.copy())  # (channels, samples), in the geometry's order
            except queue.Full:  # the consumer is too slow: drop, and say so
                self.stats.lost_samples += n_frames
                self.stats.lost_packets += 1

        resampler = StreamResampler(self.capture_rate, SAMPLE_RATE) if self.channels == 1 else None
        block_n = self.block_samples
        pending = np.zeros((self.channels, 0), np.float32)
        first_sample = index = 0
        global _open_streams
        with _streams_lock:
            try:
                stream = self.sd.InputStream(
                    device=self.name,
                    channels=self.channels,
                    samplerate=self.capture_rate,
                    dtype="float32",
                    blocksize=0,
                    callback=callback,
                )
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
                if resampler is not None:
                    chunk = resampler(chunk[0])[None, :]
                pending = np.concatenate([pending, chunk], axis=1)
                while pending.shape[1] >= block_n:
                    block, pending = pending[:, :block_n], pending[:, block_n:]
                    video, video_ts = self._video(clock_start)
                    self.stats.audio_blocks += 1
                    yield SensorFrame(
                        index=index,
                        first_sample=first_sample,
                        timestamp=first_sample / self.sample_rate,
                        audio=np.ascontiguousarray(block * np.float32(self.full_scale_pa)),
                        video=video,
                        video_timestamp=video_ts,
                        sample_rate=self.sample_rate,
                    )
                    index += 1
                    first_sample += block_n
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
        return {
            **super().describe(),
            "input": self.info.get("name"),
            "capture_rate": self.capture_rate,
            "resampled": self.capture_rate != self.sample_rate,
            "camera": self._camera is not None,
            "full_scale_pa": self.full_scale_pa,
            "channel_map": self.channel_map or list(range(self.channels)),
        }  # frame channel i <- device channel
