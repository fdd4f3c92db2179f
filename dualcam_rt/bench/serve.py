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
- realistic (``--mode realistic`` or ``both``): mostly quiet streams, as real rooms are: room
  noise (~45 dB SPL, below the model's level gate) with one action (a take of the sound bank's
  test split, or a procedural clap without a bank) every ~10 s per stream, at ~75 dB SPL, sent
  at real time in 0.5 s messages (one per hop). The "no action" gate answers a window without
  the action ``silence`` without running the student; windows that hold it (5 of every ~10 s
  with a 5 s window) run it. The largest count at p99 <= 100 ms with every prediction back,
  doubling from 25 then bisecting (bounded by ``REALISTIC_MAX`` and the time budget).
- memory: the serve process's resident set (``/proc``): at start (models loaded), its peak
  (``VmHWM``) with the live device imaging (steering tables), and per stream client (RSS during
  the largest sustained realistic step minus RSS before it, divided by the clients).
- CPU per prediction is compared with bare onnxruntime's own CPU time per prediction (this
  process's CPU time while it runs the model at the service's mean batch).
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
MODES = ("standard", "realistic", "both")
REALISTIC_CHUNK_S = 0.5  # one message per hop
REALISTIC_FIRST, REALISTIC_MAX = 25, 3200
REALISTIC_STEP_S = 20.0  # 5 s to fill the window, 15 s measured: one or two actions per stream
REALISTIC_ACTION_EVERY_S = 10.0
REALISTIC_NOISE_DB, REALISTIC_ACTION_DB = 45.0, 75.0  # dB SPL (RMS): room noise, the action over its length
REALISTIC_BUDGET_S = 300.0


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

    def memory_mb(self) -> dict[str, float]:
        """Resident set now (``rss``) and its peak so far (``peak``, VmHWM) in MiB (Linux /proc; NaN elsewhere)."""
        got = {"rss": float("nan"), "peak": float("nan")}
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                key = {"VmRSS:": "rss", "VmHWM:": "peak"}.get(line.split(":")[0] + ":")
                if key:
                    got[key] = round(int(line.split()[1]) / 1024, 1)
        except (OSError, ValueError):
            pass
        return got

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


async def _realtime_client(
    ws_url: str,
    chunks: list[bytes],
    chunk_s: float,
    offset_s: float,
    latencies: list,
    failures: list,
    on_prediction=None,
    open_timeout_s: float = 30,
    drain_s: float = 15,
) -> None:
    """One real-time /v1/stream client: starts ``offset_s`` into the hop (real streams are not in
    phase), sends one s16le chunk every ``chunk_s`` and records "last chunk of a hop sent ->
    prediction received"; ``on_prediction(msg)`` sees every prediction after the warm-up."""
    import websockets

    try:
        await asyncio.sleep(offset_s)
        async with websockets.connect(ws_url, open_timeout=open_timeout_s, max_size=None) as ws:
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
                        if on_prediction is not None:
                            on_prediction(msg)

            receiver = asyncio.create_task(receive())
            start = time.perf_counter()
            for i, chunk in enumerate(chunks):
                sent_at[round((i + 1) * chunk_s, 4)] = time.perf_counter()
                await ws.send(chunk)
                await asyncio.sleep(max(0.0, start + (i + 1) * chunk_s - time.perf_counter()))
            await ws.send(json.dumps({"type": "end"}))
            await asyncio.wait_for(receiver, drain_s)
    except Exception as err:  # a refused or dropped client counts against the step
        failures.append(type(err).__name__)


async def _stream_client(ws_url: str, seconds: float, offset_s: float, latencies: list, failures: list) -> None:
    """One real-time client of noise: 0.25 s of s16le every 0.25 s (four chunks of noise, cycled)."""
    chunk = int(STREAM_RATE * STREAM_CHUNK_S)
    pcm = (np.random.default_rng().standard_normal(chunk * 4) * 3000).astype("<i2").tobytes()
    chunks = [pcm[i % 4 * chunk * 2 : (i % 4 + 1) * chunk * 2] for i in range(int(seconds / STREAM_CHUNK_S))]
    await _realtime_client(ws_url, chunks, STREAM_CHUNK_S, offset_s, latencies, failures)


def _step_summary(n: int, latencies: list[float], failures: list[str], step_s: float) -> dict:
    """What every search step reports: clients, latency percentiles, predictions against expected, failures."""
    return {
        "clients": n,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
        "predictions": len(latencies),
        "expected": n * int(round((step_s - STREAM_WARMUP_S) / STREAM_HOP_S)),
        "failures": len(failures),
    }


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
    summary = _step_summary(n, latencies, failures, STREAM_STEP_S)
    expected, p99 = summary["expected"], summary["p99_ms"]
    return {
        **summary,
        "mean_batch": round(items / max(batches, 1), 2),
        # server CPU per prediction (warm-up windows included): the figure load on the machine disturbs least
        "server_cpu_ms_per_prediction": round(cpu_s * 1e3 / max(items, 1), 2),
        # CPU the clients themselves took (they share the machine with the server on loopback)
        "load_generator_cpu_share": round(load_generator_cpu_s / wall, 3),
        "ok": not failures and len(latencies) >= expected and p99 <= STREAM_P99_MS,
    }


def bench_stream(server: ServeProcess, deadline: float) -> dict:
    """The largest number of real-time clients with p99 <= 100 ms: doubling from 10, then bisection."""
    steps = _search(lambda n: _stream_step(server, n), STREAM_FIRST, STREAM_MAX, STREAM_STEP_S + 15, deadline)
    good = max((s["clients"] for s in steps if s["ok"]), default=0)
    bad = min((s["clients"] for s in steps if not s["ok"]), default=None)
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
    most any service can get out of this model on this machine; and its CPU time per prediction
    (this process's, all threads: nothing else runs in it meanwhile)."""
    x = np.zeros(
        (batch, *[d if isinstance(d, int) else 1 for d in model.session.get_inputs()[0].shape[1:]]), np.float32
    )
    model.logits(x)
    runs, t0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        model.logits(x)
        runs += 1
    per_s = runs * batch / (time.perf_counter() - t0)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / (runs * batch)
    return {
        "batch": batch,
        "predictions_per_s": round(per_s, 1),
        "clients": int(per_s * STREAM_HOP_S),
        "cpu_ms_per_prediction": round(cpu_ms, 3),
    }


def _action_sounds() -> tuple[list[np.ndarray], str]:
    """Unit-RMS actions at the stream rate: a few takes of each class of the sound bank's test split
    (the default bank), or procedural claps when no bank is built."""
    from ..config import get_settings
    from ..errors import DualcamError
    from ..labels import CLASSES
    from ..sim.soundbank import SoundBank, default_bank_dir

    rng = np.random.default_rng(1)
    try:
        bank = SoundBank.open(default_bank_dir(get_settings().cache_dir))
        takes = [t.audio[: 2 * STREAM_RATE] for c in CLASSES for t in bank.takes(c, "test")[:3]]
    except (DualcamError, OSError):
        takes = []
    source = "sound bank test split"
    if not takes:
        n = int(0.15 * STREAM_RATE)
        takes = [rng.standard_normal(n) * np.exp(-np.arange(n) / (0.02 * STREAM_RATE)) for _ in range(8)]
        source = "procedural claps"
    return [(t / max(float(np.sqrt(np.mean(t**2))), 1e-9)).astype(np.float32) for t in takes], source


def _spl_units(db: float) -> float:
    """Digital units (full scale 1 = 20 Pa, as the service takes PCM) of an RMS level in dB SPL."""
    from ..inference.gate import FILE_FULL_SCALE_PA, P0_PA

    return P0_PA * 10 ** (db / 20) / FILE_FULL_SCALE_PA


async def _quiet_client(
    ws_url: str,
    seconds: float,
    offset_s: float,
    noise: np.ndarray,
    actions: list[np.ndarray],
    rng: np.random.Generator,
    latencies: list,
    failures: list,
    counts: dict,
) -> None:
    """One real-time mostly-quiet client: room noise with an action every ~10 s, one 0.5 s message per hop."""

    chunk = int(STREAM_RATE * REALISTIC_CHUNK_S)
    n = int(seconds * STREAM_RATE)
    start = int(rng.integers(0, len(noise) - n))
    signal = noise[start : start + n].copy()
    t = rng.uniform(0, REALISTIC_ACTION_EVERY_S)
    while t < seconds:
        sound = actions[int(rng.integers(len(actions)))] * np.float32(_spl_units(REALISTIC_ACTION_DB))
        at = int(t * STREAM_RATE)
        signal[at : at + len(sound)] += sound[: n - at]
        t += REALISTIC_ACTION_EVERY_S * rng.uniform(0.8, 1.2)
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes()
    chunks = [pcm[i * chunk * 2 : (i + 1) * chunk * 2] for i in range(n // chunk)]

    def count(msg: dict) -> None:
        counts["model_ran" if msg["reason"] != "silence" else "silence"] += 1

    await _realtime_client(ws_url, chunks, REALISTIC_CHUNK_S, offset_s, latencies, failures, count, 60, 30)


def _realistic_step(server: ServeProcess, n: int, actions: list[np.ndarray], idle_mb: float) -> dict:
    """``n`` mostly-quiet real-time clients at once (staggered over the hop); latency, model share, and
    memory: the most RSS during the step less ``idle_mb`` (the fresh server's, no client yet), per client."""
    import threading

    ws_url = server.url.replace("http://", "ws://") + "/v1/stream"
    latencies: list[float] = []
    failures: list[str] = []
    counts = {"model_ran": 0, "silence": 0}
    rng = np.random.default_rng(n)
    noise = rng.standard_normal(int((REALISTIC_STEP_S + 10) * STREAM_RATE)).astype(np.float32)
    noise *= np.float32(_spl_units(REALISTIC_NOISE_DB))
    rss_before = server.memory_mb()["rss"]
    rss_max = [rss_before]
    done = threading.Event()

    def watch_memory():
        while not done.wait(0.5):
            rss_max[0] = max(rss_max[0], server.memory_mb()["rss"])

    watcher = threading.Thread(target=watch_memory, daemon=True)
    watcher.start()
    cpu_before, wall_before = server.cpu_s(), time.monotonic()

    async def step():
        await asyncio.gather(
            *[
                _quiet_client(
                    ws_url,
                    REALISTIC_STEP_S,
                    STREAM_HOP_S * i / n,
                    noise,
                    actions,
                    np.random.default_rng([n, i]),
                    latencies,
                    failures,
                    counts,
                )
                for i in range(n)
            ]
        )

    asyncio.run(step())
    done.set()
    watcher.join()
    cpu_s, wall = server.cpu_s() - cpu_before, time.monotonic() - wall_before
    summary = _step_summary(n, latencies, failures, REALISTIC_STEP_S)
    expected, p99 = summary["expected"], summary["p99_ms"]
    return {
        **summary,
        "model_ran_share": round(counts["model_ran"] / max(len(latencies), 1), 3),
        "server_cpu_share": round(cpu_s / wall, 3),  # of one CPU
        "rss_before_mb": rss_before,
        "rss_max_mb": rss_max[0],
        "rss_per_client_kb": round((rss_max[0] - idle_mb) * 1024 / n, 1),
        "ok": not failures and len(latencies) >= expected and p99 <= STREAM_P99_MS,
    }


def bench_realistic(server: ServeProcess, deadline: float) -> dict:
    """The largest number of mostly-quiet real-time streams with p99 <= 100 ms: doubling from 25, then
    bisection; ``server`` is fresh (its RSS with no client yet is the memory baseline)."""
    actions, source = _action_sounds()
    _warm_up(server.url)
    idle_mb = server.memory_mb()["rss"]
    steps = _search(
        lambda n: _realistic_step(server, n, actions, idle_mb),
        REALISTIC_FIRST,
        REALISTIC_MAX,
        REALISTIC_STEP_S + 40,
        deadline,
    )
    good = max((s["clients"] for s in steps if s["ok"]), default=0)
    sustained = next((s for s in steps if s["clients"] == good), None)
    return {
        "max_streams": good,
        "p99_limit_ms": STREAM_P99_MS,
        "actions": source,
        "action_every_s": REALISTIC_ACTION_EVERY_S,
        "noise_db_spl": REALISTIC_NOISE_DB,
        "action_db_spl": REALISTIC_ACTION_DB,
        "model_ran_share": sustained["model_ran_share"] if sustained else None,
        "idle_rss_mb": idle_mb,
        "rss_per_client_kb": sustained["rss_per_client_kb"] if sustained else None,
        "steps": steps,
    }


def _warm_up(url: str) -> None:
    """One /v1/predict of a loud 5 s clip: the model and the features have run once (their buffers exist)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.random.default_rng(0).standard_normal(5 * STREAM_RATE) * 0.1, STREAM_RATE, format="WAV")
    httpx.post(f"{url}/v1/predict", content=buf.getvalue(), timeout=60).raise_for_status()


def _search(step, first: int, most: int, step_s: float, deadline: float) -> list[dict]:
    """Steps of a client-count search: doubling from ``first`` until a step fails (or ``most``), then
    bisection to 5 clients (or 5 %); no step starts that would end past ``deadline``."""
    steps: list[dict] = []
    good, bad = 0, None
    n = first
    while n and time.monotonic() + step_s < deadline:
        result = step(n)
        steps.append(result)
        if result["ok"]:
            good = n
        else:
            bad = n
        if bad is None:
            n = min(2 * n, most)
            if n == good:
                break
        else:
            n = (good + bad) // 2
            if bad - good <= max(STREAM_RESOLUTION, good // 20) or n in (good, bad):
                break
    return steps


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


def run(as_json: bool = False, mode: str = "standard") -> dict:
    """Run the measurements of ``mode`` (standard: predict, stream, live; realistic: mostly-quiet
    streams and memory per client; both) and print them (rich table, or JSON); the figures come back."""
    from ..errors import BadInput

    if mode not in MODES:
        raise BadInput(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    started = time.monotonic()
    result: dict = {
        "model": None,
        "mode": mode,
        "cpu_count": os.cpu_count(),
        "cpus_usable": cpu_budget(),
        "cpu_model": _cpu_model(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory() as tmp:
        models_dir, name = _models_dir(Path(tmp))
        result["model"] = name
        model = load_models(models_dir)[name]  # same thread count as the server: the CPUs this process may use
        env = {"DUALCAM_MODELS_DIR": str(models_dir), "DUALCAM_DEFAULT_MODEL": name}
        memory: dict = {}
        if mode != "realistic":
            server = ServeProcess(["--no-device"], env)
            with server as url:
                memory["no_device_at_start_mb"] = server.memory_mb()["rss"]
                result["predict"] = bench_predict(url, model)
                result["stream"] = bench_stream(server, started + BUDGET_S)
                memory["no_device_peak_mb"] = server.memory_mb()["peak"]
        if mode != "standard":  # a fresh server: its idle RSS is the per-client baseline
            server = ServeProcess(["--no-device"], env)
            with server as url:
                memory["no_device_at_start_mb"] = server.memory_mb()["rss"]
                result["realistic"] = bench_realistic(server, time.monotonic() + REALISTIC_BUDGET_S)
                memory["idle_after_one_prediction_mb"] = result["realistic"]["idle_rss_mb"]
                memory["per_stream_client_kb"] = result["realistic"]["rss_per_client_kb"]
                memory["realistic_peak_mb"] = server.memory_mb()["peak"]
            q = result["realistic"]
            q["model_ceiling"] = ceiling = model_ceiling(model, 1)
            if q["model_ran_share"]:  # streams the model alone allows when it runs for this share of the hops
                q["model_bound_streams"] = int(ceiling["predictions_per_s"] * STREAM_HOP_S / q["model_ran_share"])
        if mode != "realistic":
            stream = result["stream"]
            stream["model_ceiling"] = model_ceiling(model, max(1, round(stream["mean_batch"] or 1)))
            if stream["server_cpu_ms_per_prediction"]:
                stream["cpu_over_bare_ort"] = round(
                    stream["server_cpu_ms_per_prediction"] / stream["model_ceiling"]["cpu_ms_per_prediction"], 2
                )
            stream["share_of_ceiling"] = round(
                stream["max_realtime_clients"] / max(stream["model_ceiling"]["clients"], 1), 3
            )
            live_server = ServeProcess(["sim://?scenario=1&seed=0&label=clapping"], {**env, "DUALCAM_HOP_S": "0.25"})
            with live_server as url:
                result["live"] = bench_live(url)
                memory["live_imaging_peak_mb"] = live_server.memory_mb()["peak"]
    result["memory"] = memory
    result["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    return report(result, as_json, _print)


def _cpu_model() -> str:
    """The CPU's model name and whether it has VNNI (int8 dot products), from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vnni = [f for f in ("avx512_vnni", "avx_vnni") if f in flags]
    return f"{name} ({', '.join(vnni) if vnni else 'no VNNI'})"


def _print(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"dualcam-rt serve benchmark (model {r['model']}, {r['cpus_usable']} of {r['cpu_count']} CPUs "
        f"{r['cpu_model']}, load average {r['load_average_1min']}-{r['load_average_1min_end']}, loopback)"
    )
    t.add_column("measure")
    t.add_column("figure", justify="right")
    t.add_column("goal / baseline")
    if "predict" in r:
        _standard_rows(t, r["predict"], r["stream"], r["live"])
    if "realistic" in r:
        q = r["realistic"]
        t.add_row(
            "/v1/stream mostly-quiet streams (realistic)",
            f"{q['max_streams']} (model-bound: {q.get('model_bound_streams')})",
            f"p99 <= {q['p99_limit_ms']:.0f} ms; goal >= 1,000; an action every ~{q['action_every_s']:.0f} s "
            f"({q['actions']}, {q['action_db_spl']:.0f} dB SPL) in {q['noise_db_spl']:.0f} dB SPL room noise",
        )
        for step in q["steps"]:
            t.add_row(
                f"  {step['clients']} streams",
                f"p50 {step['p50_ms']:.1f} / p99 {step['p99_ms']:.1f} ms",
                f"{step['predictions']}/{step['expected']} predictions, student ran for "
                f"{step['model_ran_share']:.0%}, server {step['server_cpu_share']:.0%} of a CPU, "
                f"RSS {step['rss_before_mb']:.0f} -> {step['rss_max_mb']:.0f} MiB "
                f"({step['rss_per_client_kb']:.0f} KiB/stream){'' if step['ok'] else '  (not sustained)'}",
            )
    m, nan = r["memory"], float("nan")
    t.add_row(
        "serve memory (RSS)",
        f"{m['no_device_at_start_mb']:.0f} MiB at start, no device",
        f"peak {m.get('no_device_peak_mb', nan):.0f} MiB (stream search), "
        f"{m.get('realistic_peak_mb', nan):.0f} MiB (realistic search); with the live device imaging: "
        f"{m.get('live_imaging_peak_mb', nan):.0f} MiB peak",
    )
    if m.get("per_stream_client_kb") is not None:
        t.add_row("  per /v1/stream client", f"{m['per_stream_client_kb']:.0f} KiB", "RSS at N streams - at 0, / N")
    Console().print(t)


def _standard_rows(t, p: dict, s: dict, lv: dict) -> None:
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
        f"p99 <= {s['p99_limit_ms']:.0f} ms; {s['share_of_ceiling']:.0%} of the ceiling (goal >= 70 %); "
        f"first failing: {s['first_failing']}",
    )
    t.add_row(
        "  model-bound ceiling",
        f"{c['clients']} clients",
        f"bare ORT {c['predictions_per_s']:.0f} predictions/s at batch {c['batch']}",
    )
    t.add_row(
        "  server CPU per prediction",
        f"{s['server_cpu_ms_per_prediction']} ms",
        f"{s.get('cpu_over_bare_ort', float('nan')):.2f}x bare ORT's {c['cpu_ms_per_prediction']:.2f} CPU-ms "
        f"(goal <= 1.3x); the rest is features, WebSocket, JSON",
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
