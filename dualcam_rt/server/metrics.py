"""Prometheus metrics of one app (its own registry, so that several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.predictions = Counter("dualcam_predictions", "Predictions made", ["source", "model"], registry=r)
        self.latency = Histogram(
            "dualcam_prediction_latency_seconds",
            "Arrival of the last audio to prediction ready",
            ["source"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.gate_skipped = Counter(
            "dualcam_gate_skipped_windows",
            "Windows below the level gate (answered silence; the student did not run)",
            ["source"],
            registry=r,
        )
        self.live_gate_skipped = Gauge(
            "dualcam_live_gate_skipped_windows",
            "Live windows below the level gate (the student did not run)",
            registry=r,
        )
        self.errors = Counter("dualcam_http_errors", "Error answers", ["code"], registry=r)
        self.ws_clients = Gauge("dualcam_ws_clients", "Open WebSocket clients", ["route"], registry=r)
        self.ws_dropped = Counter(
            "dualcam_ws_dropped_messages", "Messages dropped for slow clients", ["route"], registry=r
        )
        self.ws_closed = Counter(
            "dualcam_ws_rejected", "WebSocket clients closed for bad input", ["route", "code"], registry=r
        )
        self.live_frames = Gauge("dualcam_live_frames", "Sensor frames received", registry=r)
        self.live_visual_dropped = Gauge("dualcam_live_visual_dropped", "Frames the imaging stage skipped", registry=r)
        self.live_lost_samples = Gauge("dualcam_device_lost_samples", "Samples the device lost", registry=r)
