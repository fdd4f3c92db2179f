"""The REST routes over real HTTP: health, readiness, models, predict (and every bad upload), metrics."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import free_port

from dualcam_rt.config import Settings
from dualcam_rt.inference.tiny import band_of, write_tiny_model
from dualcam_rt.labels import CLASSES
from dualcam_rt.server.app import create_app
from dualcam_rt.server.routes import PredictAnswer
from dualcam_rt.server.run import BackgroundServer

MAX_UPLOAD_BYTES = 400_000
MAX_UPLOAD_SECONDS = 8.0


def tone(freq_hz: float, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq_hz * t).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)


def encode(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    write_tiny_model(d)
    return d


@pytest.fixture(scope="module")
def url(models_dir):
    settings = Settings(
        models_dir=models_dir, max_upload_bytes=MAX_UPLOAD_BYTES, max_upload_seconds=MAX_UPLOAD_SECONDS, api_token=None
    )
    with BackgroundServer(create_app(settings, live=False), free_port()) as base:
        yield base


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"] and "\n" not in body["error"]["message"]


def test_health_and_readiness_answer_once_models_are_loaded(url):
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    r = httpx.get(f"{url}/readyz")
    assert r.status_code == 200
    assert r.json()["ready"] is True
    assert r.json()["providers"]["tone-bands"] == ["CPUExecutionProvider"]


def test_readiness_is_503_while_no_model_is_loaded(tmp_path):
    with BackgroundServer(create_app(Settings(models_dir=tmp_path), live=False), free_port()) as base:
        r = httpx.get(f"{base}/readyz")
        assert_error(r, 503, "not_ready")
        assert_error(httpx.post(f"{base}/v1/predict", content=encode(tone(1000, 1, 16000), 16000)), 404, "not_found")


def test_models_lists_classes_and_input_spec(url):
    body = httpx.get(f"{url}/v1/models").json()
    assert body["default"] == "tone-bands"
    (model,) = body["models"]
    assert model["classes"] == list(CLASSES)
    assert model["input"]["kind"] == "spectrogram"
    assert model["input"]["shape"] == [None, 257, 500]
    assert model["providers"] == ["CPUExecutionProvider"]


@pytest.mark.parametrize("freq_hz", [1000, 3000])
def test_predict_classifies_a_stereo_44k_wav_tone_by_its_band(url, freq_hz):
    body = encode(tone(freq_hz, 2.0, 44_100, channels=2), 44_100)
    r = httpx.post(f"{url}/v1/predict", content=body, headers={"content-type": "audio/wav"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["label"] == CLASSES[band_of(freq_hz)]
    assert out["top_k"][0]["label"] == out["label"] and len(out["top_k"]) == 3
    assert abs(sum(out["probabilities"].values()) - 1) < 1e-3
    assert out["input"] == {"format": "WAV", "sample_rate": 44_100, "channels": 2, "seconds": 2.0}
    assert out["latency_ms"] > 0 and out["timing_ms"]["inference_ms"] > 0
    PredictAnswer.model_validate(out)  # the answer is what the OpenAPI document promises


@pytest.mark.parametrize("fmt,subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_predict_accepts_flac_and_ogg_at_odd_rates(url, fmt, subtype):
    body = encode(tone(2000, 1.5, 22_050, channels=3), 22_050, fmt, subtype)
    out = httpx.post(f"{url}/v1/predict?top_k=5", content=body).json()
    assert out["label"] == CLASSES[band_of(2000)]
    assert len(out["top_k"]) == 5 and out["input"]["format"] == fmt


def test_predict_accepts_a_multipart_upload(url):
    body = encode(tone(1000, 1.0, 8000), 8000)
    r = httpx.post(f"{url}/v1/predict", files={"file": ("clip.wav", body, "audio/wav")})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == CLASSES[band_of(1000)]


def test_bad_uploads_get_json_4xx_and_the_server_stays_up(url):
    wav = encode(tone(1000, 1.0, 16000), 16000)
    cases = {
        "empty": (b"", 400, "bad_input"),
        "not audio": (b"<html>definitely not audio</html>" * 20, 400, "bad_input"),
        "truncated": (wav[: len(wav) // 2], 400, "bad_input"),
        "header only": (wav[:44], 400, "bad_input"),
        "absurd rate": (encode(tone(100, 1.0, 500), 500), 400, "bad_input"),
        "absurd channels": (encode(np.zeros((100, 100), np.float32), 16000), 400, "bad_input"),
        "too many bytes": (encode(tone(1000, 6.0, 48_000), 48_000), 413, "too_large"),
        "too long": (encode(tone(100, 12.0, 1000), 1000), 413, "too_large"),
    }
    for name, (body, status, code) in cases.items():
        r = httpx.post(f"{url}/v1/predict", content=body)
        assert r.status_code == status, (name, r.text)
        assert_error(r, status, code)
    assert_error(httpx.post(f"{url}/v1/predict?model=nope", content=wav), 404, "not_found")
    assert_error(httpx.post(f"{url}/v1/predict?top_k=0", content=wav), 422, "invalid_request")
    assert_error(httpx.get(f"{url}/v1/nothing-here"), 404, "not_found")
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.post(f"{url}/v1/predict", content=wav).status_code == 200


def test_metrics_count_predictions_and_errors(url):
    httpx.post(f"{url}/v1/predict", content=encode(tone(1000, 1.0, 16000), 16000))
    httpx.post(f"{url}/v1/predict", content=b"")
    text = httpx.get(f"{url}/metrics").text
    assert 'dualcam_predictions_total{model="tone-bands",source="predict"}' in text
    assert 'dualcam_http_errors_total{code="bad_input"}' in text
    assert "dualcam_prediction_latency_seconds_bucket" in text


def test_openapi_documents_the_routes(url):
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    for route in (
        "/healthz",
        "/readyz",
        "/v1/status",
        "/v1/models",
        "/v1/predict",
        "/v1/recordings",
        "/v1/recordings/{rec_id}",
    ):
        assert route in paths, route


def test_the_default_model_setting_picks_the_model_requests_get(tmp_path):
    write_tiny_model(tmp_path, "tone-bands")
    write_tiny_model(tmp_path, "zz-tones")  # last by name: only the setting makes it the default
    with BackgroundServer(
        create_app(Settings(models_dir=tmp_path, default_model="zz-tones"), live=False), free_port()
    ) as base:
        assert httpx.get(f"{base}/v1/models").json()["default"] == "zz-tones"
        r = httpx.post(f"{base}/v1/predict", content=encode(tone(1000, 1.0, 12_288), 12_288))
        assert r.status_code == 200 and r.json()["model"] == "zz-tones"
    with BackgroundServer(
        create_app(Settings(models_dir=tmp_path, default_model="absent"), live=False), free_port()
    ) as base:
        assert httpx.get(f"{base}/v1/models").json()["default"] == "tone-bands"


def test_recording_on_a_service_without_a_device_is_a_503_and_records_nothing(url):
    assert_error(httpx.post(f"{url}/v1/recordings", json={"seconds": 1.0}), 503, "device_error")
    assert httpx.get(f"{url}/v1/recordings").json() == {"recordings": []}
