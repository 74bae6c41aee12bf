"""The MLflow pyfunc that serves a registered model (MLflow "models from code").

Weights travel as safetensors plus an architecture JSON, so loading a registered model never
unpickles anything; this file is the only code MLflow stores with the model.
"""

import json

import mlflow.models
import mlflow.pyfunc
import numpy as np
import torch
from safetensors.torch import load_file

from unlearning.models import build_model


class ErasureTorchModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        with open(context.artifacts["architecture"]) as handle:
            description = json.load(handle)
        self.model = build_model(description["architecture"], description["config"])
        self.model.load_state_dict(load_file(context.artifacts["weights"]))
        self.model.eval()

    def predict(self, context, model_input, params=None):
        with torch.no_grad():
            return self.model(torch.as_tensor(np.asarray(model_input, dtype=np.float32))).numpy()


mlflow.models.set_model(ErasureTorchModel())
