"""The "no action" gate and the debounced events: decisions on synthetic windows, the student not
run on silence, one event per clap, and every route's null answer over real HTTP / WebSocket."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import numpy as np
import pytest
import soundfile as sf
import websockets
from conftest import free_port, run_cli

from dualcam_rt.config import Settings
from dualcam_rt.errors import BadInput
from dualcam_rt.inference.calibrate import choose_gate
from dualcam_rt.inference.gate import DEFAULT_GATE, Gate, level_db, onsets
from dualcam_rt.inference.models import Model, ModelSet, load_models
from dualcam_rt.inference.score import score_clips
from dualcam_rt.inference.tiny import band_of, write_tiny_model
from dualcam_rt.labels import CLASSES
from dualcam_rt.pipelines.replay import replay_timeline
from dualcam_rt.pipelines.stream import StreamPredictor
from dualcam_rt.server.app import create_app
from dualcam_rt.server.run import BackgroundServer

RATE = 12_288
CLASSES_BG = [*CLASSES, "background"]


def probs_with(top: int, p: float, n: int = len(CLASSES)) -> np.ndarray:
    out = np.full(n, (1 - p) / (n - 1), np.float32)
    out[top] = p
    return out


def test_a_confident_action_is_labelled_and_low_confidence_is_no_action():
    gate = Gate(silence_db=50, min_confidence=0.6)
    confident = gate.decide(probs_with(3, 0.9), CLASSES)
    assert confident["label"] == CLASSES[3] and confident["reason"] is None
    unsure = gate.decide(probs_with(3, 0.5), CLASSES)
    assert unsure["label"] is None and unsure["reason"] == "no_action"
    assert unsure["top_k"][0]["label"] == CLASSES[3] and len(unsure["probabilities"]) == len(CLASSES)


def test_the_background_class_is_never_a_label_and_its_probability_is_not_reported():
    gate = Gate.of(
        {"classes": CLASSES_BG, "gate": {"background_class": "background", "silence_db": 40, "min_confidence": 0.0}}
    )
    answer = gate.decide(probs_with(len(CLASSES), 0.8, len(CLASSES_BG)), CLASSES_BG)
    assert answer["label"] is None and answer["reason"] == "no_action"
    assert "background" not in answer["probabilities"] and len(answer["probabilities"]) == len(CLASSES)
    assert all(item["label"] != "background" for item in answer["top_k"])
    assert abs(sum(answer["probabilities"].values()) - 0.2) < 1e-4  # raw, not renormalised
    assert gate.decide(probs_with(2, 0.8, len(CLASSES_BG)), CLASSES_BG)["label"] == CLASSES[2]
    assert gate.actions(CLASSES_BG) == list(CLASSES)


def test_a_malformed_card_gate_is_a_clear_error():
    with pytest.raises(BadInput, match="background class 'noise'"):
        Gate.of({"classes": CLASSES, "gate": {"background_class": "noise"}})
    with pytest.raises(BadInput, match="min_confidence"):
        Gate.of({"classes": CLASSES, "gate": {"min_confidence": 2}})
    assert Gate.of({"classes": CLASSES}) == DEFAULT_GATE


def test_level_is_db_spl_of_pascals():
    tone = np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE).astype(np.float32) * np.sqrt(2)  # 1 Pa RMS
    assert abs(level_db(tone) - 93.98) < 0.05
    assert abs(level_db(tone / 20, pa_per_unit=20) - 93.98) < 0.05
    assert level_db(np.zeros(100)) == float("-inf")


class CountingSession:
    """The real onnxruntime session of a model, counting the runs."""

    def __init__(self, session):
        self.session, self.runs = session, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.session.run(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.session, name)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Model:
    models = tmp_path_factory.mktemp("gate-models")
    write_tiny_model(models)
    return load_models(models)["tone-bands"]


def counting(model: Model, gate: dict | None = None) -> Model:
    card = {**model.card, **({"gate": gate} if gate else {})}
    return Model(model.name, card, CountingSession(model.session))


def noise(seconds: float, rms_pa: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * rms_pa).astype(np.float32)


def with_claps(seconds: float, at_s: list[float]) -> np.ndarray:
    """Room noise at 40 dB SPL with 30-ms claps (a decaying 1,000 Hz burst, ~1 Pa) at ``at_s``."""
    x = noise(seconds, 0.002)
    n = int(0.03 * RATE)
    burst = (np.sin(2 * np.pi * 1000 * np.arange(n) / RATE) * np.exp(-np.arange(n) / (0.008 * RATE))).astype(np.float32)
    for t in at_s:
        i = int(t * RATE)
        x[i : i + n] += burst * 1.5
    return x


def stream(predictor: StreamPredictor, wave: np.ndarray, chunk_s: float = 1 / 12) -> list:
    step = int(chunk_s * RATE)
    return [p for i in range(0, len(wave), step) for p in predictor.push(wave[i : i + step])]


def test_silent_windows_are_answered_without_running_the_student(tiny):
    model = counting(tiny)
    predictor = StreamPredictor(model, RATE, 0.5)
    out = stream(predictor, noise(6, 0.001))  # 34 dB SPL: a quiet room
    assert len(out) == 12 and all(p.label is None and p.reason == "silence" for p in out)
    assert model.session.runs == 0 and predictor.skipped == 12
    assert all(p.top_k == [] and p.probabilities == {} and p.events == () for p in out)
    assert len(predictor.features.x) < 2 * 5 * RATE  # skipped windows let their history go
    loud = stream(predictor, with_claps(3, [1.0]))
    assert model.session.runs == sum(p.reason != "silence" for p in loud) > 0


def test_a_single_clap_streamed_with_overlapping_windows_is_one_event(tiny):
    predictor = StreamPredictor(tiny, RATE, 0.5)
    out = stream(predictor, with_claps(12, [3.0]))
    labelled = [p for p in out if p.label is not None]
    assert len(labelled) >= 9  # the clap is inside ten 5-s windows
    events = [e for p in out for e in p.events]
    assert len(events) == 1 and abs(events[0]["onset_s"] - 3.0) < 0.02
    assert events[0]["label"] == CLASSES[band_of(1000)]
    inside = [p for p in labelled if p.t_s - p.window_s < 3.0 - 0.2 and p.t_s > 3.05]  # with 0.2 s before it
    assert len(inside) >= 9 and all(p.onsets_s == inside[0].onsets_s for p in inside)  # the same onset each time
    assert predictor.events.reported == events


def test_three_claps_one_and_a_half_seconds_apart_are_three_events(tiny):
    predictor = StreamPredictor(tiny, RATE, 0.5)
    out = stream(predictor, with_claps(10, [2.0, 3.5, 5.0]))
    onsets_s = [e["onset_s"] for p in out for e in p.events]
    assert len(onsets_s) == 3 and np.allclose(onsets_s, [2.0, 3.5, 5.0], atol=0.02)


def test_onsets_are_found_on_the_stream_grid_whatever_the_window():
    x = with_claps(8, [4.0])
    end = len(x)
    a = onsets(x, end, RATE, 50)
    b = onsets(x[1000:], end, RATE, 50)
    c = onsets(x[: int(6 * RATE)], int(6 * RATE), RATE, 50)
    assert a == b == c and len(a) == 1 and abs(a[0] - 4.0) < 0.02
    assert onsets(noise(5, 0.002), 5 * RATE, RATE, 30) == []


def test_calibration_meets_the_false_alarm_limit_with_the_fewest_misses():
    m = {
        "level_db": np.array([40, 41, 70, 72, 75, 80, 60, 65, 85]),
        "top_probability": np.array([0.9, 0.9, 0.95, 0.5, 0.6, 0.99, 0.97, 0.98, 0.99]),
        "background": np.zeros(9, bool),
        "empty": np.array([True, True, True, True, True, False, False, False, False]),
    }
    gate, rates = choose_gate(m, max_false_alarm=0.0)
    assert rates["false_alarms"] == 0 and rates["misses"] == 0
    assert 41 < gate.silence_db <= 60 and 0.95 < gate.min_confidence <= 0.97


def test_a_balanced_calibration_trades_one_false_alarm_for_many_hits():
    # one ambience clip (75 dB) the student is sure of: the 0 % limit costs two of four actions
    m = {
        "level_db": np.array([40, 41, 70, 75, 80, 60, 65, 85]),
        "top_probability": np.array([0.9, 0.9, 0.5, 0.999, 0.7, 0.8, 0.9, 0.9999]),
        "background": np.zeros(8, bool),
        "empty": np.array([True, True, True, True, False, False, False, False]),
    }
    strict, strict_rates = choose_gate(m, max_false_alarm=0.0)
    assert strict_rates["false_alarms"] == 0 and strict_rates["misses"] == 2
    gate, rates = choose_gate(m, balanced=True)
    assert rates["false_alarms"] == 1 and rates["misses"] == 0
    assert gate.silence_db <= 60 < strict.silence_db and gate.min_confidence <= 0.7


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A service on a simulated device whose tiny model's card asks for certainty (so every live
    window is "no action"), and a second, ungated tiny model for uploads and streams."""
    models = tmp_path_factory.mktemp("gate-service")
    write_tiny_model(models, "tone-bands")
    card = write_tiny_model(models, "unsure")
    gated = json.loads(card.read_text())
    gated["gate"] = {"background_class": None, "silence_db": 56.0, "min_confidence": 1.0}
    card.write_text(json.dumps(gated))
    settings = Settings(models_dir=models, default_model="unsure", hop_s=0.5)
    with BackgroundServer(create_app(settings, "sim://?scenario=1&seed=1&label=clapping"), free_port()) as url:
        yield url


def wav(wave: np.ndarray, rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_predict_answers_silence_and_no_action_with_their_reason(service):
    silent = httpx.post(
        f"{service}/v1/predict?model=tone-bands",
        content=wav(np.zeros(16_000 * 5)),
        headers={"content-type": "audio/wav"},
        timeout=30,
    )
    assert silent.status_code == 200, silent.text
    body = silent.json()
    assert body["label"] is None and body["reason"] == "silence" and body["probabilities"] == {}
    tone = 0.4 * np.sin(2 * np.pi * 1000 * np.arange(16_000 * 5) / 16_000)
    loud = httpx.post(f"{service}/v1/predict?model=tone-bands", content=wav(tone), timeout=30).json()
    assert loud["label"] == CLASSES[band_of(1000)] and loud["reason"] is None and loud["level_db"] > 100
    unsure = httpx.post(f"{service}/v1/predict?model=unsure", content=wav(tone), timeout=30).json()
    assert unsure["label"] is None and unsure["reason"] == "no_action" and len(unsure["probabilities"]) == 14
    metrics = httpx.get(f"{service}/metrics").text
    assert 'dualcam_gate_skipped_windows_total{source="predict"} 1.0' in metrics


async def stream_silence_then_tone(url: str) -> list[dict]:
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"sample_rate": 16_000, "encoding": "pcm_s16le", "channels": 1, "hop_s": 0.5}))
        json.loads(await ws.recv())
        tone = (0.4 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(16_000 * 2) / 16_000)).astype("<i2")
        audio = np.concatenate([np.zeros(16_000 * 2, "<i2"), tone])
        for i in range(0, len(audio), 8_000):
            await ws.send(audio[i : i + 8_000].tobytes())
        await ws.send(json.dumps({"type": "end"}))
        messages = [json.loads(m) async for m in ws]
        return [m for m in messages if m["type"] == "prediction"]


def test_stream_answers_silence_then_labels_the_tone_and_reports_its_event_once(service):
    url = service.replace("http://", "ws://") + "/v1/stream?model=tone-bands"
    predictions = asyncio.run(stream_silence_then_tone(url))
    assert [p["reason"] for p in predictions[:4]] == ["silence"] * 4
    assert all(p["label"] is None and p["top_k"] == [] for p in predictions[:4])
    assert all(p["label"] == CLASSES[band_of(1000)] for p in predictions[4:])
    events = [e for p in predictions for e in p["events"]]
    assert len(events) == 1 and abs(events[0]["onset_s"] - 2.0) < 0.02
    assert 'dualcam_gate_skipped_windows_total{source="stream"} 4.0' in httpx.get(f"{service}/metrics").text


async def live_predictions(url: str, n: int) -> tuple[dict, list[dict]]:
    async with websockets.connect(url) as ws:
        hello, out = None, []
        while len(out) < n:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if isinstance(msg, dict) and msg.get("type") == "hello":
                hello = msg
            elif isinstance(msg, dict) and msg.get("type") == "prediction":
                out.append(msg)
        return hello, out


def test_live_answers_no_action_when_the_card_asks_for_more_confidence(service):
    hello, predictions = asyncio.run(live_predictions(service.replace("http://", "ws://") + "/v1/live", 3))
    assert hello["model"] == "unsure" and hello["classes"] == list(CLASSES)
    assert all(p["label"] is None and p["reason"] == "no_action" and p["events"] == [] for p in predictions)
    assert all(len(p["probabilities"]) == 14 for p in predictions)


def test_calibrate_gate_refuses_a_test_split_folder(tmp_path):
    write_tiny_model(tmp_path / "models")
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.wav").write_bytes(wav(np.zeros(1000)))
    (clips / "labels.csv").write_text("file,class\na.wav,\n")
    (clips / "testset.json").write_text(json.dumps({"split": "test"}))
    r = run_cli("calibrate-gate", "--clips", str(clips), env={"DUALCAM_MODELS_DIR": str(tmp_path / "models")})
    assert r.returncode == 2 and "test split" in r.stderr and "Traceback" not in r.stderr


def test_calibrate_gate_writes_thresholds_the_scorer_then_honours(tmp_path):
    """Tones (confident actions), loud white noise (ambience the tone model is unsure of) and a
    quiet room: the calibration separates all three and writes the gate into the card."""
    write_tiny_model(tmp_path / "models")
    clips = tmp_path / "clips"
    clips.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(16_000 * 5) / 16_000
    rows = []
    for k, hz in enumerate((300, 1000, 2500, 4000)):
        (clips / f"tone{k}.wav").write_bytes(wav(0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * rng.standard_normal(len(t))))
        rows.append(f"tone{k}.wav,{CLASSES[band_of(hz)]}")
    for k in range(3):
        (clips / f"ambience{k}.wav").write_bytes(wav(0.1 * rng.standard_normal(len(t))))
        (clips / f"silence{k}.wav").write_bytes(wav(1e-4 * rng.standard_normal(len(t))))
        rows += [f"ambience{k}.wav,", f"silence{k}.wav,"]
    (clips / "labels.csv").write_text("file,class\n" + "\n".join(rows) + "\n")
    env = {"DUALCAM_MODELS_DIR": str(tmp_path / "models")}
    r = run_cli("calibrate-gate", "--clips", str(clips), "--max-false-alarm", "0", "--json", env=env)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["target_met"] and result["rates"]["false_alarms"] == 0 and result["rates"]["misses"] == 0
    card = json.loads((tmp_path / "models" / "tone-bands.json").read_text())
    assert card["gate"]["silence_db"] == result["gate"]["silence_db"] and 0 < card["gate"]["min_confidence"] < 1
    scored = score_clips(load_models(tmp_path / "models")["tone-bands"], clips)  # reads the card afresh
    assert scored["no_action"]["false_alarms"] == 0 and scored["no_action"]["misses"] == 0
    assert scored["top1_accuracy"] == 1.0


def test_a_card_with_a_malformed_gate_is_refused_when_the_models_load(tmp_path):
    card_path = write_tiny_model(tmp_path)
    card = json.loads(card_path.read_text())
    card["gate"] = {"silence_db": "quiet"}
    card_path.write_text(json.dumps(card))
    with pytest.raises(BadInput, match="tone-bands.json: model card gate"):
        load_models(tmp_path)


@pytest.mark.slow
def test_the_dashboard_shows_no_action_instead_of_a_class(service):
    from playwright.sync_api import sync_playwright
    from test_dashboard import CHROMIUM, FLAGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(service + "/")
            page.wait_for_function("document.getElementById('label').dataset.reason === 'no_action'", timeout=30_000)
            assert page.text_content("#label") == "no action"
            assert page.locator("#classes tr.top").count() == 0  # no class is highlighted as the answer
        finally:
            browser.close()


def test_replay_predict_says_silence_then_reports_the_tone_once(tmp_path):
    from dualcam_rt.frame import SensorFrame
    from dualcam_rt.sessions import SessionWriter

    t = np.arange(36 * 1024) / RATE
    wave = (0.5 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    wave[: 12 * 1024] = 0  # a silent first second
    with SessionWriter(tmp_path / "s", {"label": "whistling"}) as w:
        for i in range(36):
            w.write(
                SensorFrame(
                    index=i, first_sample=i * 1024, timestamp=i / 12, audio=wave[None, i * 1024 : (i + 1) * 1024]
                )
            )
    write_tiny_model(tmp_path / "models")
    env = {"DUALCAM_MODELS_DIR": str(tmp_path / "models")}
    out = replay_timeline(
        tmp_path / "s", Settings().geometry(), ModelSet(load_models(tmp_path / "models")), localise=False
    )
    quiet, loud = out["predictions"][:2], out["predictions"][2:]  # windows ending at 0.5 and 1.0 s hear zeros
    assert all(p["label"] is None and p["reason"] == "silence" for p in quiet)
    assert loud and {p["label"] for p in loud} == {CLASSES[band_of(3000)]}
    assert len(out["events"]) == 1 and abs(out["events"][0]["onset_s"] - 1.0) < 0.02
    table = run_cli("replay", str(tmp_path / "s"), "--predict", "--no-localise", env=env)
    assert table.returncode == 0 and "silence" in table.stdout
