"""Serving-side inference: model cards and onnxruntime sessions (``models``), decoding what clients
send (``audio``), sliding windows and cross-stream batching (``stream``), incremental stream
features (``features``), the live pipeline (``live``) and the microphone view (``listen``)."""
