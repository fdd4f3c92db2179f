"""Soak benchmark: many ``/v1/stream`` clients for minutes, then the live device with imaging for longer.

``dualcam-rt bench soak [--clients 200] [--minutes 10] [--live-minutes 30] [--json]``; 0 minutes
skips that part. The service is a real ``dualcam-rt serve`` subprocess on 127.0.0.1 (the same
one ``bench serve`` uses); this process holds the clients. Figures, per minute of the run:

- stream: ``clients`` connections held for the whole run, each sending 0.25 s of s16le noise at
  12,288 Hz every 0.25 s (real time, hops staggered over the 0.5 s hop, as real streams are).
  Every hop of a client that stays connected must come back as a prediction: dropped audio =
  hops without one, plus samples the server's ``end`` reply does not count (must be 0); a client
  lost on the way is a failed client, and its missing hops are counted apart. Latency: last chunk
  of a hop sent → its prediction received (p50, p99). An overloaded server stops reading rather
  than drop audio: the clients then fall behind real time (``max_send_lag_s``) and the latency
  grows minute by minute; the clients keep websockets' default keepalive (a ping every 20 s, closed
  when unanswered for 20 s), so a server that far behind loses them: failed clients, per minute.
- live: ``sim://`` at real time with imaging and overlay frames requested by one ``/v1/live``
  client. Dropped audio = gaps in the predictions' hop grid plus the device's lost samples (must be
  0); latency: block arrival in the service → prediction received; frames, imaged frames.
- both: the server's resident memory (``VmRSS``), and its growth from the end of the first minute
  (models loaded, buffers warm) to the end of the run.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from . import report
from .serve import ServeProcess, _models_dir, _pct

RATE, CHUNK_S, HOP_S = 12_288, 0.25, 0.5
SAMPLE_EVERY_S = 5.0  # memory and status samples
CONNECT_SPREAD_S = 10.0  # clients connect over this long, not in one burst
DRAIN_S = 180.0  # after the last chunk: wait this long at most for the server's end reply (an overloaded server lags)


def _rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _metric(url: str, name: str, label: str) -> float:
    """One sample of a Prometheus counter from /metrics, e.g. ``('..._total', 'route="stream"')``."""
    prefix = f"{name}{{{label}}} "
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Minutes:
    """Latencies and counts bucketed by the minute of the run they were measured in (what comes
    after the last minute, the connection spread and the drain, counts in the last one)."""

    def __init__(self, started: float, seconds: float):
        self.started, self.last = started, max(math.ceil(seconds / 60) - 1, 0)
        self.latency_ms: dict[int, list[float]] = defaultdict(list)
        self.rss_mb: dict[int, float] = {}
        self.counts: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def minute(self, now: float | None = None) -> int:
        return min(int(((now or time.monotonic()) - self.started) // 60), self.last)

    def rows(self) -> list[dict]:
        out = []
        for m in sorted(set(self.latency_ms) | set(self.rss_mb) | set(self.counts)):
            lat = self.latency_ms.get(m, [])
            out.append(
                {
                    "minute": m + 1,
                    "rss_mb": round(self.rss_mb.get(m, float("nan")), 1),
                    "predictions": len(lat),
                    "p50_ms": _pct(lat, 50),
                    "p99_ms": _pct(lat, 99),
                    **{k: round(v, 2) for k, v in self.counts.get(m, {}).items()},
                }
            )
        return out

    def memory(self) -> dict:
        rows = [self.rss_mb[m] for m in sorted(self.rss_mb)]
        if not rows:
            return {}
        warm = rows[0]  # the end of the first minute
        return {
            "rss_start_mb": round(rows[0], 1),
            "rss_end_mb": round(rows[-1], 1),
            "rss_growth_mb": round(rows[-1] - warm, 1),
            "rss_growth_mb_per_min": round((rows[-1] - warm) / max(len(rows) - 1, 1), 2),
        }


async def _sample_memory(pid: int, minutes: Minutes, stop: asyncio.Event) -> None:
    while not stop.is_set():
        minutes.rss_mb[minutes.minute()] = _rss_mb(pid)  # the last sample of each minute stays
        try:
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)
        except TimeoutError:
            pass
    minutes.rss_mb[minutes.minute()] = _rss_mb(pid)


async def _stream_client(ws_url: str, seconds: float, offset_s: float, minutes: Minutes, tally: dict) -> None:
    """One real-time client for ``seconds`` of audio; adds its missing hops and samples to ``tally``."""
    import websockets

    chunk = int(RATE * CHUNK_S)
    chunks = int(seconds / CHUNK_S)
    pcm = (np.random.default_rng().standard_normal(chunk * 4) * 3000).astype("<i2").tobytes()
    sent_at: dict[float, float] = {}
    received: set[float] = set()
    end: dict = {}
    receiver = None
    try:
        await asyncio.sleep(offset_s)
        async with websockets.connect(ws_url, open_timeout=60, max_size=None) as ws:
            await ws.send(json.dumps({"sample_rate": RATE, "encoding": "pcm_s16le", "channels": 1, "hop_s": HOP_S}))
            json.loads(await ws.recv())

            async def receive():
                async for message in ws:
                    msg = json.loads(message)
                    if msg["type"] == "prediction":
                        now = time.perf_counter()
                        received.add(msg["t_s"])
                        if (at := sent_at.pop(msg["t_s"], None)) is not None:
                            minutes.latency_ms[minutes.minute()].append((now - at) * 1e3)
                    elif msg["type"] == "end":
                        end.update(msg)

            receiver = asyncio.create_task(receive())
            start = time.perf_counter()
            for i in range(chunks):
                t_end = round((i + 1) * CHUNK_S, 4)
                if t_end / HOP_S == int(t_end / HOP_S):  # this chunk completes a hop
                    sent_at[t_end] = time.perf_counter()
                part = i % 4 * chunk * 2
                await ws.send(pcm[part : part + chunk * 2])
                await asyncio.sleep(max(0.0, start + (i + 1) * CHUNK_S - time.perf_counter()))
            # behind real time when the server stopped reading (TCP back-pressure), not dropping
            tally["max_send_lag_s"] = max(tally["max_send_lag_s"], time.perf_counter() - start - chunks * CHUNK_S)
            await ws.send(json.dumps({"type": "end"}))
            await asyncio.wait_for(receiver, DRAIN_S)
    except Exception as err:  # noqa: BLE001  (a refused or dropped client is a failure of the run, counted)
        tally["failures"].append(f"{type(err).__name__}: {err}"[:200])
        minutes.counts[minutes.minute()]["failed_clients"] += 1
    finally:
        if receiver is not None:  # its own error, if any, is the one counted above
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
    expected = {round(k * HOP_S, 4) for k in range(1, int(chunks * CHUNK_S / HOP_S) + 1)}
    tally["expected_hops"] += len(expected)
    if end:  # stayed connected to the end: every hop and sample must be there (dropped audio)
        tally["missing_hops"] += len(expected - received)
        tally["missing_samples"] += chunks * chunk - end.get("samples", 0)
    else:  # lost (counted in failures): what it did not get back is not audio the server dropped
        tally["hops_of_failed_clients"] += len(expected - received)


def soak_stream(clients: int, seconds: float) -> dict:
    """``clients`` real-time streams held for ``seconds`` against a ``serve --no-device``."""
    with tempfile.TemporaryDirectory() as tmp:
        models_dir, name = _models_dir(Path(tmp))
        env = {"DUALCAM_MODELS_DIR": str(models_dir), "DUALCAM_DEFAULT_MODEL": name}
        server = ServeProcess(["--no-device"], env)
        with server as url:
            ws_url = url.replace("http://", "ws://") + "/v1/stream"
            dropped_before = _metric(url, "dualcam_ws_dropped_messages_total", 'route="stream"')
            tally: dict[str, Any] = {
                "expected_hops": 0,
                "missing_hops": 0,
                "missing_samples": 0,
                "hops_of_failed_clients": 0,
                "max_send_lag_s": 0.0,
                "failures": [],
            }
            minutes = Minutes(time.monotonic(), seconds)
            own_before, wall_before = os.times(), time.monotonic()

            async def main():
                stop = asyncio.Event()
                memory = asyncio.create_task(_sample_memory(server.proc.pid, minutes, stop))
                spread = min(CONNECT_SPREAD_S, seconds / 10)
                await asyncio.gather(
                    *[_stream_client(ws_url, seconds, spread * i / clients, minutes, tally) for i in range(clients)]
                )
                stop.set()
                await memory

            asyncio.run(main())
            own, wall = os.times(), time.monotonic() - wall_before
            dropped = _metric(url, "dualcam_ws_dropped_messages_total", 'route="stream"') - dropped_before
        all_latencies = [x for lat in minutes.latency_ms.values() for x in lat]
        tally["max_send_lag_s"] = round(tally["max_send_lag_s"], 2)
        return {
            "model": name,
            "clients": clients,
            "seconds": seconds,
            **tally,
            "failures": tally["failures"][:5],
            "failed_clients": len(tally["failures"]),
            "dropped_messages": dropped,
            "dropped_audio_hops": tally["missing_hops"],
            "p50_ms": _pct(all_latencies, 50),
            "p99_ms": _pct(all_latencies, 99),
            "load_generator_cpu_share": round((own.user + own.system - own_before.user - own_before.system) / wall, 3),
            **minutes.memory(),
            "minutes": minutes.rows(),
        }


def soak_live(seconds: float) -> dict:
    """The simulated sensor at real time with imaging, one /v1/live client taking overlay frames."""
    import websockets

    with tempfile.TemporaryDirectory() as tmp:
        models_dir, name = _models_dir(Path(tmp))
        env = {"DUALCAM_MODELS_DIR": str(models_dir), "DUALCAM_DEFAULT_MODEL": name, "DUALCAM_HOP_S": str(HOP_S)}
        server = ServeProcess(["sim://?scenario=1&seed=0&label=clapping"], env)
        with server as url:
            deadline = time.monotonic() + 300
            while not httpx.get(url + "/v1/status", timeout=30).json()["live"]["imaged_frames"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the imaging stage did not start in 300 s")
                time.sleep(0.5)
            minutes = Minutes(time.monotonic(), seconds)
            hops: list[float] = []
            dropped_before = _metric(url, "dualcam_ws_dropped_messages_total", 'route="live"')
            first = httpx.get(url + "/v1/status", timeout=30).json()

            async def client(stop: asyncio.Event):
                async with websockets.connect(
                    url.replace("http://", "ws://") + "/v1/live?images=1", max_size=None
                ) as ws:
                    while not stop.is_set():
                        m = await asyncio.wait_for(ws.recv(), 30)
                        if isinstance(m, bytes):
                            minutes.counts[minutes.minute()]["images"] += 1
                            continue
                        msg = json.loads(m)
                        if msg["type"] == "prediction":
                            minutes.latency_ms[minutes.minute()].append((time.time() - msg["arrived_at"]) * 1e3)
                            hops.append(msg["t_s"])

            async def status_each_minute(stop: asyncio.Event):
                last = first["live"]
                while not stop.is_set():
                    try:
                        await asyncio.wait_for(stop.wait(), 60)
                    except TimeoutError:
                        pass
                    live = (await asyncio.to_thread(httpx.get, url + "/v1/status", timeout=30)).json()["live"]
                    row = minutes.counts[minutes.minute(time.monotonic() - 1)]
                    row["frames"] += live["frames"] - last["frames"]
                    row["imaged_frames"] += live["imaged_frames"] - last["imaged_frames"]
                    last = live

            async def main():
                stop = asyncio.Event()
                tasks = [
                    asyncio.create_task(c)
                    for c in (client(stop), status_each_minute(stop), _sample_memory(server.proc.pid, minutes, stop))
                ]
                await asyncio.sleep(seconds)
                stop.set()
                await asyncio.gather(*tasks)

            asyncio.run(main())
            last = httpx.get(url + "/v1/status", timeout=30).json()
            dropped = _metric(url, "dualcam_ws_dropped_messages_total", 'route="live"') - dropped_before
    gaps = int(sum(round(b - a, 4) / HOP_S - 1 for a, b in itertools.pairwise(hops)))
    lost = last["device"]["stats"].get("lost_samples", 0) - first["device"]["stats"].get("lost_samples", 0)
    all_latencies = [x for lat in minutes.latency_ms.values() for x in lat]
    frames = last["live"]["frames"] - first["live"]["frames"]
    return {
        "model": name,
        "seconds": seconds,
        "predictions": len(hops),
        "missing_hops": gaps,
        "device_lost_samples": lost,
        "dropped_audio_hops": gaps + lost // int(RATE * HOP_S),
        "dropped_messages": dropped,
        "frames": frames,
        "frame_rate_hz": round(frames / seconds, 2),
        "imaging_fps": round((last["live"]["imaged_frames"] - first["live"]["imaged_frames"]) / seconds, 2),
        "visual_dropped": last["live"]["visual_dropped"] - first["live"]["visual_dropped"],
        "p50_ms": _pct(all_latencies, 50),
        "p99_ms": _pct(all_latencies, 99),
        **minutes.memory(),
        "minutes": minutes.rows(),
    }


def run(as_json: bool = False, clients: int = 200, minutes: float = 10.0, live_minutes: float = 30.0) -> dict:
    """Soak the stream route, then the live device; print the figures (table or JSON) and give them back."""
    from ..errors import BadInput
    from ..threads import cpu_budget

    if clients < 1 or minutes < 0 or live_minutes < 0 or not (minutes or live_minutes):
        raise BadInput("soak needs --clients >= 1 and --minutes / --live-minutes >= 0, not both 0")
    started = time.monotonic()
    result: dict = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": cpu_budget(),
        "load_average_1min_start": round(os.getloadavg()[0], 2),
    }
    if minutes:
        result["stream"] = soak_stream(clients, minutes * 60)
    if live_minutes:
        result["live"] = soak_live(live_minutes * 60)
    result["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    return report(result, as_json, _print)


def _print(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for part in ("stream", "live"):
        s = r.get(part)
        if not s:
            continue
        what = f"{s['clients']} /v1/stream clients" if part == "stream" else "live device with imaging"
        t = Table(
            title=f"soak: {what}, {s['seconds'] / 60:g} min, model {s['model']}, {r['cpus_usable']} of "
            f"{r['cpu_count']} CPUs, load average {r['load_average_1min_start']} -> "
            f"{r['load_average_1min_end']}"
        )
        extra = ["frames", "imaged_frames"] if part == "live" else ["failed_clients"]
        for col in ["minute", "RSS MiB", "predictions", "p50 ms", "p99 ms", *extra]:
            t.add_column(col, justify="right")
        for row in s["minutes"]:
            t.add_row(
                str(row["minute"]),
                f"{row['rss_mb']:.1f}",
                str(row["predictions"]),
                f"{row['p50_ms']:.1f}",
                f"{row['p99_ms']:.1f}",
                *[f"{row.get(k, 0):.0f}" for k in extra],
            )
        console.print(t)
        console.print(
            f"  dropped audio: {s['dropped_audio_hops']} hops (must be 0); RSS growth after minute 1: "
            f"{s.get('rss_growth_mb', float('nan'))} MiB ({s.get('rss_growth_mb_per_min', float('nan'))} "
            f"MiB/min); p99 {s['p99_ms']} ms overall; dropped messages {s['dropped_messages']:g}"
            + (
                f"; failed clients {s['failed_clients']}; samples the server did not count "
                f"{s['missing_samples']}; clients behind real time by up to {s['max_send_lag_s']} s"
                if part == "stream"
                else f"; {s['frame_rate_hz']} frames/s, imaging {s['imaging_fps']} fps"
            ),
            highlight=False,
        )
