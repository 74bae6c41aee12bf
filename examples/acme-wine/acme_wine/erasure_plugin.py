"""What Erasure needs to know about the classifier: how to build it and what kind of model it is.

Listed under the `erasure.architectures` entry point in pyproject.toml; it imports only Erasure's plug-in
surface (docs/plugins.md), and the model itself (model.py) does not import Erasure at all.
"""

from acme_wine.model import WineClassifier, WineConfig
from unlearning.plugin_api import Architecture

WINE_MLP = Architecture("acme-wine-mlp", WineClassifier, WineConfig, task_kind="classification", construct="kwargs")
