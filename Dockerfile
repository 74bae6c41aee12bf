# Erasure GPU worker: runs deletion-request flows picked up from a Prefect work pool.
# Build: docker build -t erasure-worker .   Run: docker run --gpus all -e PREFECT_API_URL=... erasure-worker
# The base image already holds CUDA and torch 2.13.0; requirements.lock pins everything else; the
# `production` extra adds the Dask task runner (`erasure request batch`) and the PostgreSQL drivers.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    DVC_NO_ANALYTICS=1 \
    ERASURE_HOME=/home/erasure/state

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN useradd --create-home --uid 10001 erasure
WORKDIR /opt/erasure

COPY --chown=erasure:erasure pyproject.toml requirements.lock README.md ./
COPY --chown=erasure:erasure unlearning ./unlearning
COPY --chown=erasure:erasure pipelines ./pipelines
COPY --chown=erasure:erasure bench ./bench
RUN pip install -c requirements.lock -e '.[production]' \
    && python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"

USER 10001
HEALTHCHECK --interval=60s --timeout=20s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import torch, pipelines.flow.deletion; assert torch.cuda.is_available(), 'no GPU visible'"]

ENTRYPOINT ["prefect", "worker", "start"]
CMD ["--pool", "erasure-gpu", "--type", "process"]
