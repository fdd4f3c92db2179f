"""The live pipeline: a device's frames → predictions, source positions and overlay frames.

Three worker threads joined by bounded queues, so that no stage blocks another:

- acquisition: reads ``device.frames()``, stamps each block's arrival, and hands the audio to the
  audio stage (queue of ``AUDIO_QUEUE_BLOCKS``; a full queue blocks acquisition: audio is never
  dropped) and the frame to the imaging stage (queue of 2; when imaging falls behind the oldest
  frame is dropped and counted). Taps (the recorder) see every frame here.
- audio: one microphone → the stream predictor (``pipelines.stream``), a prediction every hop.
- imaging: the imaging stage (``pipelines.imaging``: beamform → band energy → source or none) and
  the MFCC volume; when some client asked for images, the video frame as JPEG and the colour map
  as a transparent PNG layer (in the position message, only when there is a source).

What is shown (band, dB range, source margin) is ``self.view``, a ``dsp.overlay.View`` that a
client may replace at any time (one reference swap: the imaging thread reads it once per frame).
Results leave through ``publish(message)``: a dict (JSON event) or bytes (a video JPEG); it
is called from the worker threads and must not block.
"""

from __future__ import annotations

import base64
import collections
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..devices.base import Device
from ..dsp.overlay import DEFAULT_VIEW, View
from ..frame import SensorFrame
from ..geometry import Geometry
from ..inference.models import Model
from .imaging import ImagingStage
from .stream import StreamPredictor

AUDIO_QUEUE_BLOCKS = 120  # 10 s of sensor ticks
VISUAL_QUEUE_FRAMES = 2
JPEG_QUALITY = 70
IMAGING_NICE = 5  # Linux applies a thread's nice value to that thread alone


def percentiles(values, qs=(50, 90, 99)) -> dict:
    """``{"p50": ..., ...}`` in the values' unit (rounded), or {} when there are none."""
    if not values:
        return {}
    arr = np.fromiter(values, dtype=float)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs} | {"n": len(arr)}


class LivePipeline:
    """Runs a device through the student and the imaging chain in worker threads (``start``/``stop``)."""

    def __init__(
        self,
        device: Device,
        model: Model | None,
        publish: Callable[[dict | bytes], None],
        *,
        geometry: Geometry,
        hop_s: float = 0.5,
        mic_channel: int = 0,
        imaging: bool = True,
        beamform_backend: str = "auto",
        cache_dir: str | Path | None = None,
        beamformer=None,
        top_k: int = 3,
        view: View = DEFAULT_VIEW,
    ):
        self.device, self.model, self.publish = device, model, publish
        self.hop_s, self.mic_channel, self.imaging, self.top_k = hop_s, mic_channel, imaging, top_k
        self.beamform_backend, self.geometry, self.cache_dir = beamform_backend, geometry, cache_dir
        self.audio_queue: queue.Queue = queue.Queue(maxsize=AUDIO_QUEUE_BLOCKS)
        self.visual_queue: queue.Queue = queue.Queue(maxsize=VISUAL_QUEUE_FRAMES)
        self.want_images = threading.Event()  # set while some client wants video frames and map layers
        self.view = view
        self.taps: list[Callable[[SensorFrame], None]] = []
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.state = "starting"  # starting | streaming | ended | failed | stopped
        self.error: str | None = None
        self.started_at = time.time()
        self.last_frame_at: float | None = None
        self.frames = 0
        self.visual_dropped = 0
        self.imaged = 0
        self.predictions = 0
        self.gate_skipped = 0  # windows below the level gate (the student did not run)
        self.prediction_ms: collections.deque = collections.deque(maxlen=2000)
        self.imaging_ms: collections.deque = collections.deque(maxlen=2000)
        self.beamformer = beamformer  # the imaging stage builds one in its thread unless given
        self.beamform_backend_used: str | None = None
        self.latest_mfcc: np.ndarray | None = None

    # -- control -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the stage threads (the imaging stage first builds its beamformer, which takes seconds)."""
        stages = [("acquisition", self._acquire), ("audio", self._audio)]
        if self.imaging:
            stages.append(("imaging", self._image))
        for name, target in stages:
            t = threading.Thread(target=self._guard, args=(target,), name=f"live-{name}", daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        if self.state in ("starting", "streaming"):
            self.state = "stopped"
        self.device.close()
        for q in (self.audio_queue, self.visual_queue):
            try:
                q.put_nowait(None)  # wake the stage up so it sees ``stopping``
            except queue.Full:
                pass
        for t in self.threads:
            t.join(timeout_s)

    @property
    def streaming(self) -> bool:
        """True while frames keep arriving (one within the last 2 s)."""
        return self.state == "streaming" and self.last_frame_at is not None and time.time() - self.last_frame_at < 2.0

    def status(self) -> dict:
        """Counters, rates and latency percentiles (ms) for ``/v1/status``."""
        elapsed = max(time.time() - self.started_at, 1e-9)
        return {
            "state": self.state,
            "error": self.error,
            "frames": self.frames,
            "frame_rate_hz": round(self.frames / elapsed, 3),
            "visual_dropped": self.visual_dropped,
            "imaged_frames": self.imaged,
            "predictions": self.predictions,
            "gate_skipped": self.gate_skipped,
            "audio_queue": self.audio_queue.qsize(),
            "hop_s": self.hop_s,
            "mic_channel": self.mic_channel,
            "model": self.model.name if self.model else None,
            "beamform_backend": self.beamform_backend_used,
            "prediction_latency_ms": percentiles(self.prediction_ms),
            "imaging_latency_ms": percentiles(self.imaging_ms),
        }

    # -- stages ----------------------------------------------------------------------------
    def _guard(self, stage: Callable[[], None]) -> None:
        try:
            stage()
        except Exception as err:  # a broken device or stage ends the pipeline, visibly
            if not self.stopping.is_set():
                self.state, self.error = "failed", f"{type(err).__name__}: {err}"
                self.publish({"type": "error", "message": self.error})
                self.stopping.set()

    def _acquire(self) -> None:
        for frame in self.device.frames():
            if self.stopping.is_set():
                return
            arrived = time.time()
            self.frames += 1
            self.last_frame_at = arrived
            self.state = "streaming"
            if self.model is not None:
                self.audio_queue.put((frame, arrived))  # blocks when full: audio is never dropped
            if self.imaging:
                self._offer_visual(frame, arrived)
            for tap in list(self.taps):
                tap(frame)
        if not self.stopping.is_set():
            self.state = "ended"
            self.publish({"type": "end", "frames": self.frames})

    def _offer_visual(self, frame: SensorFrame, arrived: float) -> None:
        try:
            self.visual_queue.put_nowait((frame, arrived))
        except queue.Full:
            try:
                self.visual_queue.get_nowait()  # imaging is behind: drop the oldest frame
                self.visual_dropped += 1
            except queue.Empty:
                pass
            self.visual_queue.put_nowait((frame, arrived))

    def _audio(self) -> None:
        if self.model is None:
            return
        predictor: StreamPredictor | None = None
        while not self.stopping.is_set():
            item = self.audio_queue.get()
            if item is None:
                return
            frame, arrived = item
            predictor = predictor or StreamPredictor(self.model, frame.sample_rate, self.hop_s, self.top_k)
            for p in predictor.push(frame.audio[self.mic_channel]):
                latency_ms = (time.time() - arrived) * 1e3
                self.prediction_ms.append(latency_ms)
                self.predictions += 1
                self.gate_skipped = predictor.skipped
                self.publish(
                    {
                        "type": "prediction",
                        "model": self.model.name,
                        "tick": frame.index,
                        "t_s": round(p.t_s, 4),
                        "window_s": round(p.window_s, 3),
                        "arrived_at": arrived,
                        "latency_ms": round(latency_ms, 3),
                        "features_ms": round(p.timing.get("features_ms", 0.0), 3),
                        "inference_ms": round(p.timing.get("inference_ms", 0.0), 3),
                        "truth": (frame.truth or {}).get("label"),
                        **p.answer(),
                    }
                )

    def _image(self) -> None:
        try:  # imaging may drop frames, predictions may not lag: let the audio path win the CPU
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), IMAGING_NICE)
        except (OSError, AttributeError):
            pass
        stage = ImagingStage(self.geometry, self.beamform_backend, self.cache_dir, beamformer=self.beamformer)
        self.beamformer = stage.beamformer
        self.beamform_backend_used = stage.backend
        while not self.stopping.is_set():
            item = self.visual_queue.get()
            if item is None:
                return
            frame, arrived = item
            view = self.view
            image = stage.image(frame.audio, view)
            self.latest_mfcc = image.mfcc()  # (36, 48, 12): the teacher's input, at the sensor rate
            seen = stage.describe(image, view)
            images = self.want_images.is_set() and frame.video is not None
            layer = None
            if images and seen["source"] is not None:
                layer = "data:image/png;base64," + base64.b64encode(stage.layer_png(image, view)).decode()
            self.imaged += 1
            self.imaging_ms.append((time.time() - arrived) * 1e3)
            truth = frame.truth or {}
            self.publish(
                {
                    "type": "position",
                    "tick": frame.index,
                    "t_s": round(frame.timestamp, 4),
                    "arrived_at": arrived,
                    "imaging_ms": round(self.imaging_ms[-1], 3),
                    **seen,
                    **view.describe(),
                    "truth_px": truth.get("source_px"),
                    **({"layer": layer} if images else {}),
                }
            )
            if images:
                ok, jpeg = cv2.imencode(".jpg", frame.video, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if ok:
                    self.publish(jpeg.tobytes())
