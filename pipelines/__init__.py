"""Erasure's MLOps composition: the deletion flow and its adapters to MLflow, DVC, GX and ONNX.

Prefect and MLflow read their settings when first imported, so the embedded defaults are exported
here, before any submodule imports them.
"""

from pipelines.adapters.settings import load_settings

load_settings().export_environment()
