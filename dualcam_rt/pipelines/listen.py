"""``dualcam-rt listen``: the live pipeline's audio path on a microphone, shown in the terminal."""

from __future__ import annotations

import json
import queue
import sys
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..devices import open_device
from ..errors import DeviceError
from ..geometry import Geometry
from ..inference.models import ModelSet
from .live import LivePipeline

JSON_FIELDS = ("model", "t_s", "label", "reason", "top_k", "level_db", "onset_s", "events", "latency_ms", "window_s")


def shown_reason(reason: str) -> str:
    """How the terminal names a null label's reason."""
    return "silence" if reason == "silence" else "no action"


def view(message: dict | None, device: str, shown: int) -> Table:
    """The live view: top classes with bars (or "silence" / "no action"), latency, predictions so far."""
    table = Table(title=f"dualcam-rt listen · {device}", caption=f"{shown} predictions · Ctrl-C to stop")
    table.add_column("class")
    table.add_column("probability", justify="right")
    table.add_column("", min_width=30)
    if message is None:
        table.add_row("waiting for the first hop of audio…", "", "")
        return table
    if message["label"] is None:
        level = message.get("level_db")
        table.add_row(f"[bold]{shown_reason(message['reason'])}[/]", "" if level is None else f"{level:.0f} dB SPL", "")
    for item in message["top_k"]:
        p = item["probability"]
        table.add_row(
            item["label"],
            f"{100 * p:5.1f} %",
            "█" * int(round(30 * p)),
            style="dim" if message["label"] is None else None,
        )
    for event in message.get("events", []):
        table.add_row(f"event: {event['label']}", f"at {event['onset_s']:.2f} s", "")
    table.add_row("latency", f"{message['latency_ms']:.1f} ms", f"window {message['window_s']:.1f} s")
    return table


def listen(
    uri: str,
    models: ModelSet,
    geometry: Geometry,
    model_name: str | None = None,
    hop_s: float = 0.5,
    seconds: float | None = None,
    as_json: bool = False,
    mic_channel: int = 0,
) -> int:
    """Classify a microphone live until Ctrl-C (or ``seconds``) with ``models``' model ``model_name``
    (its default when None); the number of predictions comes back."""
    model = models.get(model_name)
    device = open_device(uri)
    events: queue.Queue = queue.Queue()
    pipeline = LivePipeline(
        device,
        model,
        events.put,
        geometry=geometry,
        hop_s=hop_s,
        imaging=False,
        mic_channel=min(mic_channel, device.channels - 1),
    )
    shown, last = 0, None
    deadline = time.monotonic() + seconds if seconds else float("inf")
    console = Console()
    pipeline.start()
    try:
        with (
            Live(view(None, uri, 0), console=console, refresh_per_second=8, transient=False)
            if not as_json
            else _NoLive() as live
        ):
            while time.monotonic() < deadline:
                try:
                    message = events.get(timeout=0.2)
                except queue.Empty:
                    continue
                if message.get("type") == "error":
                    raise DeviceError(f"{uri} stopped: {message['message']}")
                if message.get("type") == "end":
                    break
                if message.get("type") != "prediction":
                    continue
                shown, last = shown + 1, message
                if as_json:
                    print(json.dumps({k: message[k] for k in JSON_FIELDS}), flush=True)
                else:
                    live.update(view(last, uri, shown))
    except KeyboardInterrupt:
        pass
    finally:
        pipeline.stop()
    if not as_json:
        print(f"{shown} predictions", file=sys.stderr)
    return shown


class _NoLive:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
