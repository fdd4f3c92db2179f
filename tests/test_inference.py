"""The inference package on its own: windows, uploads, model cards, batching, the live pipeline's queues."""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
import time
from functools import partial

import numpy as np
import pytest
import soundfile as sf

from dualcam_rt.devices.base import Device
from dualcam_rt.dsp.resample import resample
from dualcam_rt.errors import BadInput, NotFound, TooLarge
from dualcam_rt.frame import SensorFrame
from dualcam_rt.geometry import get_geometry
from dualcam_rt.inference.audio import decode_audio, decode_pcm
from dualcam_rt.inference.models import ModelSet, load_models, softmax
from dualcam_rt.inference.predict import predict_waves
from dualcam_rt.inference.stream import Batcher, SlidingWindow
from dualcam_rt.inference.tiny import band_of, write_tiny_model
from dualcam_rt.labels import CLASSES
from dualcam_rt.pipelines.live import LivePipeline
from dualcam_rt.threads import cpu_budget


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    write_tiny_model(d)
    return load_models(d)["tone-bands"]


def tone(freq_hz, seconds, rate=12_288):
    return np.sin(2 * np.pi * freq_hz * np.arange(int(seconds * rate)) / rate).astype(np.float32)


def test_sliding_window_hands_out_every_hop_whatever_the_chunking():
    signal = np.arange(100, dtype=np.float32)
    for chunk in (1, 7, 10, 33, 100):
        w = SlidingWindow(window_samples=25, hop_samples=10)
        got = [out for i in range(0, 100, chunk) for out in w.push(signal[i : i + chunk])]
        assert [end for end, _ in got] == list(range(10, 101, 10)), chunk
        for end, window in got:
            np.testing.assert_array_equal(window, signal[max(0, end - 25) : end])


def test_upload_is_mixed_to_mono_and_resampled_to_the_sensor_rate():
    rate = 48_000
    stereo = np.stack([tone(1000, 1.0, rate), -tone(1000, 1.0, rate) * 0 + tone(1000, 1.0, rate)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo, rate, format="WAV", subtype="FLOAT")
    wave, info = decode_audio(buf.getvalue(), max_seconds=10)
    assert info == {"format": "WAV", "sample_rate": rate, "channels": 2, "seconds": 1.0}
    assert wave.dtype == np.float32 and len(wave) == 12_288
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) == 1000  # 1 Hz per bin for one second


def test_upload_limits_and_broken_bodies_raise_the_right_errors():
    buf = io.BytesIO()
    sf.write(buf, tone(1000, 3.0, 16_000), 16_000, format="WAV")
    with pytest.raises(TooLarge):
        decode_audio(buf.getvalue(), max_seconds=2)
    with pytest.raises(BadInput, match="truncated"):
        decode_audio(buf.getvalue()[:5000], max_seconds=10)
    with pytest.raises(BadInput, match="empty"):
        decode_audio(b"", max_seconds=10)
    nan = io.BytesIO()
    sf.write(nan, np.full(100, np.nan, np.float32), 16_000, format="WAV", subtype="FLOAT")
    with pytest.raises(BadInput, match="NaN"):
        decode_audio(nan.getvalue(), max_seconds=10)


def test_pcm_messages_decode_and_misaligned_ones_are_refused():
    pcm = (np.array([[1000, -1000], [2000, 0]], "<i2")).tobytes()
    np.testing.assert_allclose(decode_pcm(pcm, "pcm_s16le", 2), [0.0, 1000 / 32768], atol=1e-7)
    np.testing.assert_array_equal(decode_pcm(np.array([0.5, -0.5], "<f4").tobytes(), "pcm_f32le", 1), [0.5, -0.5])
    with pytest.raises(BadInput, match="whole number"):
        decode_pcm(b"\x00" * 6, "pcm_f32le", 1)
    with pytest.raises(BadInput, match="NaN"):
        decode_pcm(np.array([np.inf], "<f4").tobytes(), "pcm_f32le", 1)


def test_resampling_keeps_a_tone_where_it_was():
    wave = resample(tone(440, 2.0, 44_100), 44_100, 12_288)
    assert len(wave) == 2 * 12_288
    assert np.argmax(np.abs(np.fft.rfft(wave))) == 880  # 0.5 Hz per bin for two seconds


def test_model_cards_load_and_unknown_names_are_not_found(tmp_path, model):
    assert model.kind == "spectrogram" and model.classes == list(CLASSES)
    assert model.providers[-1] == "CPUExecutionProvider"
    assert model.session.get_session_options().intra_op_num_threads == cpu_budget()  # DUALCAM_ORT_THREADS=0
    models = ModelSet({"tone-bands": model})
    assert models.get().name == "tone-bands"
    with pytest.raises(NotFound, match="nope"):
        models.get("nope")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(BadInput, match="broken.json"):
        load_models(tmp_path)
    (tmp_path / "broken.json").write_text(
        json.dumps({"name": "orphan", "input": {"kind": "spectrogram"}, "classes": []})
    )
    assert load_models(tmp_path) == {}  # a card without its ONNX file is skipped


def test_tone_band_model_classifies_tones_by_frequency(model):
    probs, timing = predict_waves(model, [tone(f, 2.0) for f in (300, 1000, 2500, 5000)])
    assert probs.shape == (4, len(CLASSES))
    assert list(probs.argmax(axis=1)) == [band_of(f) for f in (300, 1000, 2500, 5000)]
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert timing["features_ms"] > 0 and timing["inference_ms"] > 0
    np.testing.assert_allclose(softmax(np.array([[0.0, 0.0]])), [[0.5, 0.5]])


def test_batcher_serves_concurrent_callers_in_shared_batches(model):
    async def main():
        batcher = Batcher(model, max_batch=8)
        results = await asyncio.gather(
            *[batcher.predict(partial(model.features, tone(f, 1.0))) for f in [500, 3000] * 8]
        )
        await batcher.close()
        return results, batcher

    results, batcher = asyncio.run(main())
    assert [int(p.argmax()) for p, _ in results] == [band_of(500), band_of(3000)] * 8
    assert batcher.items == 16 and batcher.batches < 16
    assert max(t["batch"] for _, t in results) <= 8


@pytest.mark.parametrize("gather_s,batches", [(0.05, 1), (0.0, 2)])
def test_batcher_waits_briefly_for_other_streams_windows(model, gather_s, batches):
    async def late(batcher):  # another stream's window, due 10 ms after the first one
        await asyncio.sleep(0.01)
        return await batcher.predict(partial(model.features, tone(3000, 1.0)))

    async def main():
        batcher = Batcher(model, max_batch=8, gather_s=gather_s)
        results = await asyncio.gather(batcher.predict(partial(model.features, tone(500, 1.0))), late(batcher))
        await batcher.close()
        return results, batcher

    results, batcher = asyncio.run(main())
    assert [int(p.argmax()) for p, _ in results] == [band_of(500), band_of(3000)]
    assert batcher.items == 2 and batcher.batches == batches  # gathered into one run only with a window


def test_batcher_computes_a_batch_s_inputs_in_parallel_threads(model):
    threads = set()

    def make(freq):
        threads.add(threading.get_ident())
        time.sleep(0.02)  # long enough that the batch's inputs overlap
        return model.features(tone(freq, 1.0))

    async def main():
        batcher = Batcher(model, max_batch=8, feature_threads=2)
        results = await asyncio.gather(*[batcher.predict(partial(make, f)) for f in [500, 3000, 5000] * 4])
        await batcher.close()
        return results

    results = asyncio.run(main())
    expected, _ = predict_waves(model, [tone(f, 1.0) for f in [500, 3000, 5000] * 4])
    np.testing.assert_allclose(np.stack([p for p, _ in results]), expected, rtol=1e-6)
    assert len(threads) == 2 and threading.get_ident() not in threads


def test_onnxruntime_threads_default_to_the_cpus_this_process_may_use(tmp_path):
    write_tiny_model(tmp_path)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        assert cpu_budget() == 1
        one = load_models(tmp_path)["tone-bands"]
    finally:
        os.sched_setaffinity(0, before)
    assert one.session.get_session_options().intra_op_num_threads == 1
    assert load_models(tmp_path)["tone-bands"].session.get_session_options().intra_op_num_threads == cpu_budget()
    assert load_models(tmp_path, threads=3)["tone-bands"].session.get_session_options().intra_op_num_threads == 3


def test_the_shipped_int8_hearnet_names_fresh_simulated_actions_as_its_fp32_original(tmp_path, monkeypatch):
    """Scenes with seeds the dataset never used: the int8 copy must answer as the fp32 student does."""
    from dualcam_rt.config import REPO_MODELS_DIR
    from dualcam_rt.sim import Scene

    monkeypatch.setenv("DUALCAM_CACHE_DIR", str(tmp_path))
    models = load_models(REPO_MODELS_DIR, threads=1)
    fp32, int8 = models["hearnet"], models["hearnet_int8"]
    q = int8.card["quantization"]
    assert q["of"] == fp32.card["file"] and q["format"] == "QDQ"
    metrics = int8.card["metrics"]  # both measured on the same test clips by quantize
    assert abs(metrics["test_accuracy"] - metrics["test_accuracy_fp32"]) <= 0.025  # one clip of 42
    assert (REPO_MODELS_DIR / int8.card["file"]).stat().st_size < (
        REPO_MODELS_DIR / fp32.card["file"]
    ).stat().st_size / 3
    classes = ["clapping", "speaking", "whistling", "typing", "paper_ripping", "knocking"]
    inputs = []
    for i, label in enumerate(classes):
        scene = Scene(scenario=1, seed=23_456 + i, label=label, subject=i % 9, cache_dir=tmp_path)
        inputs.append(fp32.features(np.concatenate([scene.next_tick().audio[0] for _ in range(60)])))
    x = np.stack(inputs)
    assert list(int8.logits(x).argmax(1)) == list(fp32.logits(x).argmax(1))


class SlowFrames(Device):
    """A device of mono tone frames; its video frames pile up behind a deliberately slow imaging stage."""

    kind = "test"

    def __init__(self, n):
        super().__init__("test://", channels=1)
        self.n = n

    def frames(self):
        t = np.arange(1024) / 12_288
        for i in range(self.n):
            audio = np.sin(2 * np.pi * 1000 * (t + i * 1024 / 12_288))[None].astype(np.float32)
            yield SensorFrame(
                index=i, first_sample=i * 1024, timestamp=i / 12, audio=audio, video=np.zeros((480, 640, 3), np.uint8)
            )


class SlowBeamformer:
    """Imaging slower than the sensor (50 ms per frame against 83 ms ticks delivered at once)."""

    backend = "slow"

    def images(self, audio):
        time.sleep(0.05)
        return np.ones((36, 48, 512), np.float32)


def test_live_pipeline_never_drops_audio_while_a_slow_imaging_stage_drops_frames(model):
    events = []
    pipeline = LivePipeline(
        SlowFrames(60), model, events.append, geometry=get_geometry(), hop_s=0.5, beamformer=SlowBeamformer()
    )
    pipeline.start()
    deadline = time.monotonic() + 30
    while pipeline.state != "ended" or pipeline.audio_queue.qsize() or pipeline.predictions < 10:
        assert time.monotonic() < deadline, pipeline.status()
        time.sleep(0.05)
    pipeline.stop()
    predictions = [e for e in events if isinstance(e, dict) and e["type"] == "prediction"]
    assert [p["t_s"] for p in predictions] == [0.5 * k for k in range(1, 11)]  # 60 ticks = 5 s: every hop
    assert all(p["label"] == CLASSES[band_of(1000)] for p in predictions)
    assert pipeline.visual_dropped > 0 and pipeline.imaged + pipeline.visual_dropped <= 60
    assert pipeline.status()["beamform_backend"] == "slow"
    assert {"type": "end", "frames": 60} in events


@pytest.mark.parametrize("hop_s,chunk", [(0.5, 3072), (0.5, 1000), (0.25, 4096), (1 / 6, 777)])
def test_incremental_stream_features_equal_the_plain_ones(model, hop_s, chunk):
    from dualcam_rt.inference.features import StreamFeatures

    rng = np.random.default_rng(7)
    signal = (rng.standard_normal(12_288 * 9) * 0.1 + tone(700, 9.0)).astype(np.float32)
    features = StreamFeatures(model)
    window = SlidingWindow(5 * 12_288, round(hop_s * 12_288))
    for i in range(0, len(signal), chunk):
        features.push(signal[i : i + chunk])
        for end, wave in window.push(signal[i : i + chunk]):
            plain = model.features(wave)  # float32 arithmetic: bins near zero differ by ~1e-6 of the peak
            np.testing.assert_allclose(features.at(end, wave), plain, rtol=1e-5, atol=1e-5 * plain.max())
    assert features.incremental_hits >= 4  # windows from 5 s to 9 s on the 1/6 s grid
    assert features.looped_hits >= 9  # and the first windows (< 5 s, looped) that end on it
    assert len(features.x) <= 5 * 12_288 + 4 * 2048  # history stays bounded


class FastBeamformer(SlowBeamformer):
    def images(self, audio):
        return np.ones((36, 48, 512), np.float32)


def test_live_pipeline_without_a_model_keeps_streaming_and_imaging():
    events = []
    pipeline = LivePipeline(
        SlowFrames(200), None, events.append, geometry=get_geometry(), hop_s=0.5, beamformer=FastBeamformer()
    )
    pipeline.start()
    deadline = time.monotonic() + 30
    while pipeline.state != "ended":  # 200 frames > the audio queue: nothing may wait for an audio stage
        assert time.monotonic() < deadline, pipeline.status()
        time.sleep(0.05)
    pipeline.stop()
    assert pipeline.frames == 200 and pipeline.predictions == 0
    assert any(isinstance(e, dict) and e["type"] == "position" for e in events)
