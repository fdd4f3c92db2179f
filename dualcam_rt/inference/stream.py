"""Streaming: a sliding window over one signal, and a batcher that runs many streams' windows at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..threads import cpu_budget
from .models import Model
from .predict import predict_batch


class SlidingWindow:
    """The last ``window_samples`` of a signal, handed out every ``hop_samples`` pushed."""

    def __init__(self, window_samples: int, hop_samples: int):
        self.window, self.hop = int(window_samples), max(1, int(hop_samples))
        self.buffer = np.zeros(0, dtype=np.float32)
        self.total = 0  # samples pushed so far
        self.next_hop = self.hop

    def push(self, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Windows that ended inside ``samples``: (end sample index, window (<= window_samples,))."""
        self.buffer = np.concatenate([self.buffer, samples.astype(np.float32, copy=False)])
        self.total += len(samples)
        out = []
        while self.next_hop <= self.total:
            end = len(self.buffer) - (self.total - self.next_hop)
            out.append((self.next_hop, self.buffer[max(0, end - self.window):end].copy()))
            self.next_hop += self.hop
        self.buffer = self.buffer[-self.window:]
        return out


class Batcher:
    """Runs one model for many concurrent streams: windows queued together share one ORT call.

    ``await predict(make_input)`` queues a window (a call that computes its model input); a single
    worker task takes everything queued (up to ``max_batch``) and computes it in a worker thread,
    so the event loop never blocks and the batch grows by itself when the service is busy. The
    batch's model inputs are computed in parallel by ``feature_threads`` threads (default: one per
    usable CPU; NumPy's FFT and SciPy's polyphase filter release the GIL), then one ORT call runs.
    """

    def __init__(self, model: Model, max_batch: int = 64, feature_threads: int | None = None):
        self.model, self.max_batch = model, max_batch
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"batch-{model.name}")
        threads = feature_threads or cpu_budget()
        self.features = ThreadPoolExecutor(threads, thread_name_prefix=f"features-{model.name}") if threads > 1 else None
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.batches = 0
        self.items = 0

    async def predict(self, make_input: Callable[[], np.ndarray]) -> tuple[np.ndarray, dict]:
        """Probabilities (n_classes,) of one window, and its timings (queue, features, inference ms)."""
        if self.task is None:
            self.queue = asyncio.Queue()
            self.task = asyncio.create_task(self._work())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((make_input, future, time.perf_counter()))
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            while len(items) < self.max_batch and not self.queue.empty():
                items.append(self.queue.get_nowait())
            started = time.perf_counter()
            try:
                probs, timing = await loop.run_in_executor(
                    self.executor, predict_batch, self.model, [make for make, _, _ in items], self.features)
            except Exception as err:  # one bad clip must not kill the worker: fail this batch only
                for _, fut, _ in items:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            self.batches += 1
            self.items += len(items)
            for i, (_, fut, queued) in enumerate(items):
                if not fut.done():
                    fut.set_result((probs[i], {**timing, "queue_ms": (started - queued) * 1e3,
                                               "batch": len(items)}))

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.features is not None:
            self.features.shutdown(wait=False, cancel_futures=True)
