"""Audio a client sends: decode uploads and PCM, mix to mono, resample to the sensor's mic rate.

Students were trained on microphone 0 of the DualCam, i.e. 12,288 Hz mono; any upload is mixed to
mono (mean over channels) and resampled to that rate (``dsp.resample``) so that the student's
feature code sees what it saw in training.
"""

from __future__ import annotations

import io
import struct

import numpy as np

from ..dsp.resample import resample
from ..errors import BadInput, TooLarge
from ..geometry import SAMPLE_RATE

MIN_SAMPLE_RATE = 1_000  # Hz; below this nothing of the 200 Hz - 6 kHz band survives
MAX_SAMPLE_RATE = 384_000  # Hz; the highest rate common audio hardware produces
MAX_CHANNELS = 64
PCM_ENCODINGS: dict[str, np.dtype] = {"pcm_s16le": np.dtype("<i2"), "pcm_f32le": np.dtype("<f4")}


def check_format(sample_rate: int, channels: int) -> None:
    """Raise BadInput for a sample rate or channel count no real recording has."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise BadInput(f"sample rate {sample_rate} Hz outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadInput(f"channel count {channels} outside 1..{MAX_CHANNELS}")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mono float32 (n,) from (n, channels) by averaging the channels."""
    return samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples.astype(np.float32)


def _wav_truncation(data: bytes) -> str | None:
    """Why a RIFF/WAVE body is cut short (declared data chunk longer than the body), or None."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            have = len(data) - pos - 8
            # 0 and 0xFFFFFFFF are what streaming writers put when the length is unknown
            if size not in (0, 0xFFFFFFFF) and size > have:
                return f"truncated WAV: header declares {size} bytes of audio, body has {have}"
            return None
        pos += 8 + size + (size & 1)
    return None


def decode_audio(data: bytes, max_seconds: float, to_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
    """Mono float32 (n,) at ``to_rate`` Hz from a WAV/FLAC/OGG body, and what the body was.

    Raises BadInput for empty, non-audio, truncated or absurd bodies and TooLarge for one longer
    than ``max_seconds``.
    """
    import soundfile as sf

    if not data:
        raise BadInput("empty body: send a WAV, FLAC or OGG file")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.SoundFileError, RuntimeError, EOFError) as err:
        raise BadInput(f"not a WAV/FLAC/OGG file: {str(err).split(':')[-1].strip()}") from None
    check_format(info.samplerate, info.channels)
    if info.frames / info.samplerate > max_seconds:
        raise TooLarge(f"audio is {info.frames / info.samplerate:.1f} s long; the limit is {max_seconds:g} s")
    if (why := _wav_truncation(data)) is not None:
        raise BadInput(why)
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, EOFError) as err:
        raise BadInput(f"corrupt or truncated {info.format} file: {str(err).split(':')[-1].strip()}") from None
    if len(samples) == 0:
        raise BadInput(f"{info.format} file holds no audio samples")
    if not np.isfinite(samples).all():
        raise BadInput("audio holds NaN or infinite samples")
    wave = resample(to_mono(samples), rate, to_rate)
    return wave, {
        "format": info.format,
        "sample_rate": rate,
        "channels": info.channels,
        "seconds": round(len(samples) / rate, 4),
    }


def decode_pcm(payload: bytes, encoding: str, channels: int) -> np.ndarray:
    """Mono float32 (n,) in [-1, 1] from interleaved little-endian PCM; BadInput if misaligned."""
    dtype = PCM_ENCODINGS[encoding]
    frame_bytes = dtype.itemsize * channels
    if len(payload) % frame_bytes:
        raise BadInput(
            f"{len(payload)} bytes is not a whole number of {channels}-channel "
            f"{encoding} frames ({frame_bytes} bytes each)"
        )
    samples = np.frombuffer(payload, dtype=dtype)
    if dtype.kind == "i":
        samples = samples.astype(np.float32)
        samples /= 32768.0  # in place: this runs for every streamed message
    elif not np.isfinite(samples).all():
        raise BadInput("PCM holds NaN or infinite samples")
    # mono needs no averaging (a mean over a length-1 axis costs more than the decoding)
    if channels > 1:
        return to_mono(samples.reshape(-1, channels))
    return samples if dtype.kind == "i" else samples.astype(np.float32)  # a writable copy, as before
