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

GATHER_S = 0.002  # how long a model run waits for other streams' windows when only one is queued


class AppendBuffer:
    """A float32 signal that grows at its end and lets go of its start without copying it whole at
    every append: the samples live in a larger block, and only when the block is full do the kept
    samples move, to a fresh block (so views handed out earlier keep their values)."""

    def __init__(self, spare: int = 4096):
        self.block = np.zeros(spare, np.float32)
        self.start = self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def view(self) -> np.ndarray:
        return self.block[self.start : self.end]

    def extend(self, samples: np.ndarray) -> None:
        n = len(samples)
        if self.end + n > len(self.block):  # room for a quarter as much again: a move every few appends
            need = len(self) + n
            self._move(need + max(need // 4, 4096))
        self.block[self.end : self.end + n] = samples
        self.end += n

    def drop(self, n: int) -> None:
        """Let go of the first ``n`` samples (and of the memory, once most of the block is unused: a quiet
        stream's buffers shrink back)."""
        self.start += min(max(n, 0), len(self))
        if len(self.block) > 4 * max(len(self), 4096):
            self._move(max(len(self), 4096))

    def _move(self, size: int) -> None:
        """Move the kept samples to the start of a fresh block of ``size`` samples (views keep the old one)."""
        kept = len(self)
        block = np.empty(size, np.float32)
        block[:kept] = self.block[self.start : self.end]
        self.block, self.start, self.end = block, 0, kept

    def cut(self, n: int) -> None:
        """Keep only the first ``n`` samples (the rest is written anew by the next ``extend``)."""
        self.end = self.start + min(max(n, 0), len(self))


class SlidingWindow:
    """The last ``window_samples`` of a signal, handed out every ``hop_samples`` pushed."""

    def __init__(self, window_samples: int, hop_samples: int):
        self.window, self.hop = int(window_samples), max(1, int(hop_samples))
        self.buffer = AppendBuffer()
        self.total = 0  # samples pushed so far
        self.next_hop = self.hop

    def push(self, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Windows that ended inside ``samples``: (end sample index, window (<= window_samples,)).
        Each window is a read-only view that later pushes leave unchanged."""
        self.buffer.extend(samples)
        self.total += len(samples)
        out = []
        signal = self.buffer.view()
        while self.next_hop <= self.total:
            end = len(signal) - (self.total - self.next_hop)
            window = signal[max(0, end - self.window) : end]
            window.flags.writeable = False
            out.append((self.next_hop, window))
            self.next_hop += self.hop
        self.buffer.drop(len(self.buffer) - self.window)
        return out


class Batcher:
    """Runs one model for many concurrent streams: windows queued together share one ORT call.

    ``await predict(make_input)`` queues a window (a call that computes its model input); a single
    worker task takes everything queued (up to ``max_batch``) and computes it in a worker thread,
    so the event loop never blocks. When it finds a single window queued it first waits
    ``gather_s`` (2 ms) on the event loop, so the windows of other streams that are due now join
    the same run instead of each paying a run and a thread hand-off of its own. The batch's model
    inputs are computed in parallel by ``feature_threads`` threads (default: one per usable CPU;
    NumPy's FFT and SciPy's polyphase filter release the GIL), then one ORT call runs.
    """

    def __init__(
        self, model: Model, max_batch: int = 64, feature_threads: int | None = None, gather_s: float = GATHER_S
    ):
        self.model, self.max_batch, self.gather_s = model, max_batch, gather_s
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"batch-{model.name}")
        threads = feature_threads or cpu_budget()
        self.features = (
            ThreadPoolExecutor(threads, thread_name_prefix=f"features-{model.name}") if threads > 1 else None
        )
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.batches = 0
        self.items = 0

    async def predict(self, make_input: Callable[[], np.ndarray]) -> tuple[np.ndarray, dict]:
        """Probabilities (n_classes,) of one window, and its timings (queue, features, inference ms)."""
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.task = asyncio.create_task(self._work(self.queue))
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((make_input, future, time.perf_counter()))  # unbounded: never waits
        return await future

    async def _work(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            if self.gather_s > 0 and queue.empty() and self.max_batch > 1:
                await asyncio.sleep(self.gather_s)
            while len(items) < self.max_batch and not queue.empty():
                items.append(queue.get_nowait())
            started = time.perf_counter()
            try:
                probs, timing = await loop.run_in_executor(
                    self.executor, predict_batch, self.model, [make for make, _, _ in items], self.features
                )
            except Exception as err:  # one bad clip must not kill the worker: fail this batch only
                for _, fut, _ in items:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            self.batches += 1
            self.items += len(items)
            for i, (_, fut, queued) in enumerate(items):
                if not fut.done():
                    fut.set_result((probs[i], {**timing, "queue_ms": (started - queued) * 1e3, "batch": len(items)}))

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
