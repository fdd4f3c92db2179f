"""Service benchmark on loopback: /v1/predict overhead, /v1/stream capacity, /v1/live latency.

The service runs as a real ``dualcam-rt serve`` subprocess; this process is the load generator.
Figures (one run, same machine):

- predict: p50 of a POSTed 5 s WAV against the same work done in process (decode, features,
  onnxruntime) and against the bare onnxruntime call on the ready feature tensor; the overhead is
  HTTP p50 - bare ORT p50.
- stream: real-time clients (12,288 Hz s16le, 0.25 s messages, a prediction every 0.5 s, 12 s each)
  whose hops are spread evenly over the 0.5 s hop (real streams are not in phase). A client count
  is sustained when the p99 of "last chunk of a hop sent → its prediction received", over the
  steady state (full 5 s windows), stays <= 100 ms with every prediction back; the count doubles
  from 10 until a step fails, then bisects. Next to it: the model-bound ceiling, predictions/s of
  bare onnxruntime at the mean batch size the service formed (same threads, ready inputs).
- The model is the default audio student (``DUALCAM_DEFAULT_MODEL`` picks another, e.g.
  ``hearnet_int8``), or the tiny stand-in when none is shipped.
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

from ..inference.models import load_models
from ..threads import cpu_budget
from . import report

STREAM_RATE, STREAM_CHUNK_S, STREAM_HOP_S = 12_288, 0.25, 0.5
STREAM_FIRST, STREAM_MAX, STREAM_RESOLUTION = 10, 640, 5  # doubling from 10 clients, then bisection to 5 (or 5 %)
STREAM_STEP_S = 12.0  # seconds of audio each client streams per step: 5 s to fill the window, 7 s measured
STREAM_WARMUP_S = 5.0  # latencies count once windows are full (5 s): the steady state
STREAM_P99_MS = 100.0
LIVE_SECONDS = 10.0
PREDICT_REQUESTS = 100
BUDGET_S = 240.0  # the stream search stops when the whole run gets past this


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``dualcam-rt serve`` in a subprocess on a free loopback port, ready when /healthz answers."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (open while the server runs: a pipe nobody reads would stall it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dualcam_rt", "serve", *args, "--port", str(self.port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

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

    def cpu_s(self) -> float:
        """CPU seconds the server process has used so far (Linux /proc; NaN elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")

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
        default = ModelSet(load_models(shipped), get_settings().default_model).default  # DUALCAM_DEFAULT_MODEL
    except Exception:
        default = None
    if default:
        return shipped, default
    write_tiny_model(tmp)
    return tmp, "tone-bands"


def bench_predict(url: str, model) -> dict:
    import soundfile as sf

    from ..inference.audio import decode_audio
    from ..inference.models import softmax
    from ..inference.predict import predict_waves

    rate = 12_288
    wave = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(5 * rate) / rate)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype="PCM_16")
    body = buf.getvalue()
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
    return {
        **p50,
        "http_p99_ms": _pct(served, 99),
        "requests": PREDICT_REQUESTS,
        "overhead_ms": round(p50["http_ms"] - p50["bare_ort_ms"], 3),  # the goal: <= 2 ms
        "http_over_in_process_ms": round(p50["http_ms"] - p50["in_process_ms"], 3),
    }


async def _stream_client(ws_url: str, seconds: float, offset_s: float, latencies: list, failures: list) -> None:
    """One real-time client: starts ``offset_s`` into the hop (real streams are not in phase), sends
    0.25 s of s16le noise every 0.25 s, and records "last chunk of a hop sent → prediction received"."""
    import websockets

    chunk = int(STREAM_RATE * STREAM_CHUNK_S)
    pcm = (np.random.default_rng().standard_normal(chunk * 4) * 3000).astype("<i2").tobytes()
    try:
        await asyncio.sleep(offset_s)
        async with websockets.connect(ws_url, open_timeout=30, max_size=None) as ws:
            await ws.send(
                json.dumps({"sample_rate": STREAM_RATE, "encoding": "pcm_s16le", "channels": 1, "hop_s": STREAM_HOP_S})
            )
            json.loads(await ws.recv())
            sent_at: dict[float, float] = {}

            async def receive():
                async for m in ws:
                    msg = json.loads(m)
                    if msg["type"] == "prediction" and msg["t_s"] > STREAM_WARMUP_S:
                        latencies.append((time.perf_counter() - sent_at[msg["t_s"]]) * 1e3)

            receiver = asyncio.create_task(receive())
            start = time.perf_counter()
            for i in range(int(seconds / STREAM_CHUNK_S)):
                part = i % 4 * chunk * 2
                sent_at[round((i + 1) * STREAM_CHUNK_S, 4)] = time.perf_counter()
                await ws.send(pcm[part : part + chunk * 2])
                await asyncio.sleep(max(0.0, start + (i + 1) * STREAM_CHUNK_S - time.perf_counter()))
            await ws.send(json.dumps({"type": "end"}))
            await asyncio.wait_for(receiver, 15)
    except Exception as err:  # a refused or dropped client counts against the step
        failures.append(type(err).__name__)


def _stream_step(server: ServeProcess, n: int) -> dict:
    """``n`` clients at once, their hops spread evenly over the hop (staggered, as real streams are)."""
    url = server.url
    ws_url = url.replace("http://", "ws://") + "/v1/stream"
    latencies: list[float] = []
    failures: list[str] = []
    before = httpx.get(url + "/v1/status").json()["batching"]
    cpu_before, own_before, wall_before = server.cpu_s(), os.times(), time.monotonic()

    async def step():
        await asyncio.gather(
            *[_stream_client(ws_url, STREAM_STEP_S, STREAM_HOP_S * i / n, latencies, failures) for i in range(n)]
        )

    asyncio.run(step())
    cpu_s = server.cpu_s() - cpu_before
    own, wall = os.times(), time.monotonic() - wall_before
    load_generator_cpu_s = own.user + own.system - own_before.user - own_before.system
    after = httpx.get(url + "/v1/status").json()["batching"]
    batches = sum(b["batches"] for b in after.values()) - sum(b["batches"] for b in before.values())
    items = sum(b["items"] for b in after.values()) - sum(b["items"] for b in before.values())
    expected = n * int(round((STREAM_STEP_S - STREAM_WARMUP_S) / STREAM_HOP_S))
    p99 = _pct(latencies, 99)
    return {
        "clients": n,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": p99,
        "predictions": len(latencies),
        "expected": expected,
        "failures": len(failures),
        "mean_batch": round(items / max(batches, 1), 2),
        # server CPU per prediction (warm-up windows included): the figure load on the machine disturbs least
        "server_cpu_ms_per_prediction": round(cpu_s * 1e3 / max(items, 1), 2),
        # CPU the clients themselves took (they share the machine with the server on loopback)
        "load_generator_cpu_share": round(load_generator_cpu_s / wall, 3),
        "ok": not failures and len(latencies) >= expected and p99 <= STREAM_P99_MS,
    }


def bench_stream(server: ServeProcess, deadline: float) -> dict:
    """The largest number of real-time clients with p99 <= 100 ms: doubling from 10, then bisection."""
    steps: list[dict] = []
    good, bad = 0, None
    n = STREAM_FIRST
    while n and time.monotonic() + STREAM_STEP_S + 15 < deadline:
        step = _stream_step(server, n)
        steps.append(step)
        if step["ok"]:
            good = n
        else:
            bad = n
        if bad is None:
            n = min(2 * n, STREAM_MAX)
            if n == good:
                break
        else:
            n = (good + bad) // 2
            if bad - good <= max(STREAM_RESOLUTION, good // 20) or n in (good, bad):
                break
    sustained = next((s for s in steps if s["clients"] == good), None)
    return {
        "max_realtime_clients": good,
        "p99_limit_ms": STREAM_P99_MS,
        "hop_s": STREAM_HOP_S,
        "first_failing": bad,
        "mean_batch": sustained["mean_batch"] if sustained else None,
        "server_cpu_ms_per_prediction": sustained["server_cpu_ms_per_prediction"] if sustained else None,
        "steps": steps,
    }


def model_ceiling(model, batch: int, seconds: float = 3.0) -> dict:
    """Predictions/s of bare onnxruntime at ``batch`` (ready inputs, the server's thread count): the
    most any service can get out of this model on this machine."""
    x = np.zeros(
        (batch, *[d if isinstance(d, int) else 1 for d in model.session.get_inputs()[0].shape[1:]]), np.float32
    )
    model.logits(x)
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        model.logits(x)
        runs += 1
    per_s = runs * batch / (time.perf_counter() - t0)
    return {"batch": batch, "predictions_per_s": round(per_s, 1), "clients": int(per_s * STREAM_HOP_S)}


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
    return {
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
        "predictions": len(latencies),
        "server_p50_ms": _pct(server_ms, 50),
        "frames": live["frames"],
        "imaged_frames": live["imaged_frames"],
        "visual_dropped": live["visual_dropped"],
        "imaging_fps": round(live["imaged_frames"] / max(live["frames"], 1) * 12, 2),
        "imaging_p50_ms": live["imaging_latency_ms"].get("p50"),
        "beamform_backend": live["beamform_backend"],
    }


def run(as_json: bool = False) -> dict:
    """Run the three measurements and print them (rich table, or JSON); the figures come back."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        models_dir, name = _models_dir(Path(tmp))
        model = load_models(models_dir)[name]  # same thread count as the server: the CPUs this process may use
        env = {"DUALCAM_MODELS_DIR": str(models_dir), "DUALCAM_DEFAULT_MODEL": name}
        server = ServeProcess(["--no-device"], env)
        with server as url:
            predict = bench_predict(url, model)
            stream = bench_stream(server, started + BUDGET_S)
        stream["model_ceiling"] = model_ceiling(model, max(1, round(stream["mean_batch"] or 1)))
        with ServeProcess(["sim://?scenario=1&seed=0&label=clapping"], {**env, "DUALCAM_HOP_S": "0.25"}) as url:
            live = bench_live(url)
    result = {
        "model": name,
        "cpu_count": os.cpu_count(),
        "cpus_usable": cpu_budget(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "predict": predict,
        "stream": stream,
        "live": live,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    return report(result, as_json, _print)


def _print(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"dualcam-rt serve benchmark (model {r['model']}, {r['cpus_usable']} of {r['cpu_count']} CPUs, "
        f"load average {r['load_average_1min']}, loopback)"
    )
    t.add_column("measure")
    t.add_column("figure", justify="right")
    t.add_column("goal / baseline")
    p, s, lv = r["predict"], r["stream"], r["live"]
    t.add_row(
        "/v1/predict p50",
        f"{p['http_ms']:.2f} ms",
        f"in process {p['in_process_ms']:.2f} ms, bare ORT {p['bare_ort_ms']:.3f} ms",
    )
    t.add_row("/v1/predict overhead p50 (HTTP - bare ORT)", f"{p['overhead_ms']:.2f} ms", "goal <= 2 ms")
    c = s["model_ceiling"]
    t.add_row(
        "/v1/stream real-time clients (staggered)",
        str(s["max_realtime_clients"]),
        f"p99 <= {s['p99_limit_ms']:.0f} ms; goal >= 200; first failing: {s['first_failing']}",
    )
    t.add_row(
        "  model-bound ceiling",
        f"{c['clients']} clients",
        f"bare ORT {c['predictions_per_s']:.0f} predictions/s at batch {c['batch']}",
    )
    t.add_row(
        "  server CPU per prediction",
        f"{s['server_cpu_ms_per_prediction']} ms",
        f"bare ORT {1e3 / c['predictions_per_s']:.2f} ms; the rest is features, WebSocket, JSON",
    )
    for step in s["steps"]:
        t.add_row(
            f"  {step['clients']} clients",
            f"p50 {step['p50_ms']:.1f} / p99 {step['p99_ms']:.1f} ms",
            f"{step['predictions']}/{step['expected']} predictions, mean batch {step['mean_batch']}, "
            f"server CPU {step['server_cpu_ms_per_prediction']} ms/prediction, "
            f"load generator {step['load_generator_cpu_share']:.0%} of a CPU"
            f"{'' if step['ok'] else '  (not sustained)'}",
        )
    t.add_row("/v1/live block → prediction", f"p50 {lv['p50_ms']:.1f} / p99 {lv['p99_ms']:.1f} ms", "goal p99 <= 50 ms")
    t.add_row(
        "  imaging",
        f"{lv['imaging_fps']:.1f} fps, p50 {lv['imaging_p50_ms']} ms",
        f"{lv['visual_dropped']} frames dropped",
    )
    Console().print(t)
