"""Serving-side inference: model cards and onnxruntime sessions (``models``), decoding what clients
send (``audio``), sliding windows and cross-stream batching (``stream``), incremental stream
features (``features``), one clip's prediction (``predict``) and scoring a labelled folder (``score``).
The stream predictor and the live pipeline built from these are in ``dualcam_rt.pipelines``."""
