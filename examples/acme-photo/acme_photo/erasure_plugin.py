"""What Erasure needs to know about the restorer: how to build it and what kind of model it is.

Listed under the `erasure.architectures` entry point in pyproject.toml; it imports only Erasure's plug-in
surface (docs/plugins.md), and the model itself (model.py) does not import Erasure at all.
"""

from acme_photo.model import DenoiserConfig, ResidualDenoiser
from unlearning.plugin_api import Architecture

DENOISER = Architecture("acme-photo-denoiser", ResidualDenoiser, DenoiserConfig, task_kind="restoration",
                        construct="kwargs")
