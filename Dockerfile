# dualcam-rt service image.
#   CPU (default):  docker build -t dualcam-rt .
#   GPU:            docker build -t dualcam-rt:gpu --build-arg VARIANT=gpu \
#                     --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 .
# VARIANT picks the pyproject extra: "cpu" (onnxruntime) or "gpu" (onnxruntime-gpu + cupy), never
# both (the CPU wheel would shadow the GPU one). Run: docker run -p 8000:8000 dualcam-rt
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG VARIANT=cpu

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
# libsndfile: uploads; libportaudio2: mic://; libglib2.0-0: OpenCV; python3-venv only where the
# base image has no Python of its own (the CUDA images)
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsndfile1 libportaudio2 libglib2.0-0 \
      $(command -v python3 >/dev/null || echo python3 python3-venv) \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . /src
RUN python3 -m venv /opt/venv \
 && pip install --no-cache-dir "/src[${VARIANT},audio]" \
 && mkdir -p /app/models /data/sessions \
 && if [ -d /src/models ]; then cp -r /src/models/. /app/models/; fi \
 && rm -rf /src \
 && useradd --system --uid 10001 dualcam && chown dualcam /data/sessions

USER dualcam
ENV DUALCAM_HOST=0.0.0.0 DUALCAM_PORT=8000 DUALCAM_MODELS_DIR=/app/models DUALCAM_SESSIONS_DIR=/data/sessions
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# One uvicorn process per container: scale by replicas, not workers.
CMD ["dualcam-rt", "serve", "--host", "0.0.0.0", "--port", "8000"]
