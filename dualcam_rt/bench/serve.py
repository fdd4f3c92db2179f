"""Service benchmark on loopback: /v1/predict overhead, /v1/stream capacity, /v1/live latency.

The service runs as a real ``dualcam-rt serve`` subprocess; this process is the load generator.
Figures (one run, same machine):

- predict: p50 of a POSTed 5 s WAV against the same work done in process (decode, features,
  onnxruntime) and against the bare onnxruntime call on the ready feature tensor.
- stream: real-time clients (12,288 Hz s16le, 0.25 s messages, a prediction every 0.5 s, 7 s each)
  are added in steps; a step is sustained when the p99 of "last chunk of a hop sent → its
  prediction received", over the steady state (full 5 s windows), stays <= 100 ms. The largest
  sustained count is reported.
- live: the simulated sensor at real time with full 12 fps imaging and overlay frames requested;
  latency from a block's arrival in the service to its prediction received by a /v1/live client.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from . import report

STREAM_STEPS = (1, 5, 10, 25, 50, 100, 150, 200, 300, 400)
STREAM_STEP_S = 7.0  # seconds of audio each client streams per step
STREAM_WARMUP_S = 5.0  # latencies count once windows are full (5 s): the steady state
STREAM_P99_MS = 100.0
LIVE_SECONDS = 10.0
PREDICT_REQUESTS = 60
BUDGET_S = 90.0  # the stream ramp stops when the whole run gets past this


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``dualcam-rt serve`` in a subprocess on a free loopback port, ready when /healthz answers."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # a pipe nobody reads would fill up and stall the server
        self.proc = subprocess.Popen([sys.executable, "-m", "dualcam_rt", "serve", *args, "--port", str(self.port)],
                                     env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=self.log)

    def __enter__(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"serve exited: {self.log.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("serve did not become ready in 60 s")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _pct(values, q) -> float:
    return round(float(np.percentile(values, q)), 3) if len(values) else float("nan")


def _models_dir(tmp: Path) -> tuple[Path, str]:
    """The shipped models when an audio student is there, else the tiny stand-in written to ``tmp``."""
    from ..config import get_settings
    from ..inference.models import ModelSet, load_models
    from ..inference.tiny import write_tiny_model

    shipped = get_settings().models_dir
    try:
        default = ModelSet(load_models(shipped)).default
    except Exception:
        default = None
    if default:
        return shipped, default
    write_tiny_model(tmp)
    return tmp, "tone-bands"


def bench_predict(url: str, models_dir: Path, name: str) -> dict:
    from ..inference.audio import decode_audio
    from ..inference.models import load_models, softmax
    from ..inference.predict import predict_waves

    import soundfile as sf

    rate = 12_288
    wave = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(5 * rate) / rate)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype="PCM_16")
    body = buf.getvalue()
    model = load_models(models_dir)[name]
    features = model.features(decode_audio(body, 600)[0])[None]
    bare, inproc, served = [], [], []
    with httpx.Client(timeout=30) as client:
        client.post(f"{url}/v1/predict", content=body).raise_for_status()  # warm up
        for _ in range(PREDICT_REQUESTS):  # interleaved, so that all three see the same machine load
            t0 = time.perf_counter()
            softmax(model.logits(features))
            t1 = time.perf_counter()
            predict_waves(model, [decode_audio(body, 600)[0]])
            t2 = time.perf_counter()
            client.post(f"{url}/v1/predict", content=body).raise_for_status()
            t3 = time.perf_counter()
            bare.append((t1 - t0) * 1e3)
            inproc.append((t2 - t1) * 1e3)
            served.append((t3 - t2) * 1e3)
    p50 = {"bare_ort_ms": _pct(bare, 50), "in_process_ms": _pct(inproc, 50), "http_ms": _pct(served, 50)}
    return {**p50, "http_p99_ms": _pct(served, 99), "requests": PREDICT_REQUESTS,
            "overhead_vs_in_process_ms": round(p50["http_ms"] - p50["in_process_ms"], 3),
            "overhead_vs_bare_ort_ms": round(p50["http_ms"] - p50["bare_ort_ms"], 3)}


async def _stream_client(ws_url: str, seconds: float, latencies: list, failures: list) -> None:
    import websockets

    rate, chunk_s, hop_s = 12_288, 0.25, 0.5
    chunk = int(rate * chunk_s)
    rng = np.random.default_rng()
    try:
        async with websockets.connect(ws_url, open_timeout=20, max_size=None) as ws:
            await ws.send(json.dumps({"sample_rate": rate, "encoding": "pcm_s16le", "channels": 1, "hop_s": hop_s}))
            json.loads(await ws.recv())
            sent_at: dict[float, float] = {}

            async def receive():
                async for m in ws:
                    msg = json.loads(m)
                    if msg["type"] == "prediction" and msg["t_s"] > STREAM_WARMUP_S:
                        latencies.append((time.perf_counter() - sent_at[msg["t_s"]]) * 1e3)

            receiver = asyncio.create_task(receive())
            start = time.perf_counter()
            await asyncio.sleep(rng.uniform(0, chunk_s))  # clients do not all speak at once
            n_chunks = int(seconds / chunk_s)
            for i in range(n_chunks):
                pcm = (rng.standard_normal(chunk) * 3000).astype("<i2").tobytes()
                end_s = round((i + 1) * chunk_s, 4)
                sent_at[end_s] = time.perf_counter()
                await ws.send(pcm)
                await asyncio.sleep(max(0.0, start + (i + 1) * chunk_s - time.perf_counter()))
            await ws.send(json.dumps({"type": "end"}))
            await asyncio.wait_for(receiver, 10)
    except Exception as err:  # a refused or dropped client counts against the step
        failures.append(type(err).__name__)


def bench_stream(url: str, deadline: float) -> dict:
    ws_url = url.replace("http://", "ws://") + "/v1/stream"
    steps, sustained = [], 0
    for n in STREAM_STEPS:
        if time.monotonic() + STREAM_STEP_S + 10 > deadline:
            break
        latencies: list[float] = []
        failures: list[str] = []

        async def step():
            await asyncio.gather(*[_stream_client(ws_url, STREAM_STEP_S, latencies, failures) for _ in range(n)])

        asyncio.run(step())
        expected = n * int((STREAM_STEP_S - STREAM_WARMUP_S) / 0.5)
        p99 = _pct(latencies, 99)
        ok = not failures and len(latencies) >= expected and p99 <= STREAM_P99_MS
        steps.append({"clients": n, "p50_ms": _pct(latencies, 50), "p99_ms": p99,
                      "predictions": len(latencies), "expected": expected, "failures": len(failures), "ok": ok})
        if not ok:
            break
        sustained = n
    batching = httpx.get(url + "/v1/status").json()["batching"]
    return {"max_realtime_clients": sustained, "p99_limit_ms": STREAM_P99_MS, "steps": steps, "batching": batching}


def bench_live(url: str) -> dict:
    import websockets

    latencies, server_ms = [], []
    deadline = time.monotonic() + 120
    while not httpx.get(url + "/v1/status").json()["live"]["imaged_frames"]:  # full imaging running first
        if time.monotonic() > deadline:
            raise RuntimeError("the imaging stage did not start in 120 s")
        time.sleep(0.2)

    async def main():
        async with websockets.connect(url.replace("http://", "ws://") + "/v1/live?images=1", max_size=None) as ws:
            end = time.monotonic() + LIVE_SECONDS
            while time.monotonic() < end:
                m = await asyncio.wait_for(ws.recv(), 10)
                if isinstance(m, bytes):
                    continue
                msg = json.loads(m)
                if msg["type"] == "prediction":
                    latencies.append((time.time() - msg["arrived_at"]) * 1e3)
                    server_ms.append(msg["latency_ms"])

    asyncio.run(main())
    live = httpx.get(url + "/v1/status").json()["live"]
    return {"p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99), "predictions": len(latencies),
            "server_p50_ms": _pct(server_ms, 50), "frames": live["frames"], "imaged_frames": live["imaged_frames"],
            "visual_dropped": live["visual_dropped"], "imaging_fps": round(live["imaged_frames"] / max(live["frames"], 1) * 12, 2),
            "imaging_p50_ms": live["imaging_latency_ms"].get("p50"), "beamform_backend": live["beamform_backend"]}


def run(as_json: bool = False) -> dict:
    """Run the three measurements and print them (rich table, or JSON); the figures come back."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        models_dir, name = _models_dir(Path(tmp))
        env = {"DUALCAM_MODELS_DIR": str(models_dir)}
        with ServeProcess(["--no-device"], env) as url:
            predict = bench_predict(url, models_dir, name)
            stream = bench_stream(url, started + BUDGET_S)
        with ServeProcess(["sim://?scenario=1&seed=0&label=clapping"], {**env, "DUALCAM_HOP_S": "0.25"}) as url:
            live = bench_live(url)
    result = {"model": name, "cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2), "predict": predict, "stream": stream, "live": live,
              "elapsed_s": round(time.monotonic() - started, 1)}
    return report(result, as_json, _print)


def _print(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"dualcam-rt serve benchmark (model {r['model']}, {r['cpu_count']} CPUs, "
                    f"load average {r['load_average_1min']}, loopback)")
    t.add_column("measure")
    t.add_column("figure", justify="right")
    t.add_column("goal / baseline")
    p, s, lv = r["predict"], r["stream"], r["live"]
    t.add_row("/v1/predict p50", f"{p['http_ms']:.2f} ms", f"in process {p['in_process_ms']:.2f} ms, bare ORT {p['bare_ort_ms']:.3f} ms")
    t.add_row("/v1/predict overhead p50", f"{p['overhead_vs_in_process_ms']:.2f} ms", "goal <= 2 ms")
    t.add_row("/v1/stream real-time clients", str(s["max_realtime_clients"]), f"p99 <= {s['p99_limit_ms']:.0f} ms; goal >= 200")
    for step in s["steps"]:
        t.add_row(f"  {step['clients']} clients", f"p50 {step['p50_ms']:.1f} / p99 {step['p99_ms']:.1f} ms",
                  f"{step['predictions']}/{step['expected']} predictions{'' if step['ok'] else '  (not sustained)'}")
    t.add_row("/v1/live block → prediction", f"p50 {lv['p50_ms']:.1f} / p99 {lv['p99_ms']:.1f} ms", "goal p99 <= 50 ms")
    t.add_row("  imaging", f"{lv['imaging_fps']:.1f} fps, p50 {lv['imaging_p50_ms']} ms", f"{lv['visual_dropped']} frames dropped")
    Console().print(t)
