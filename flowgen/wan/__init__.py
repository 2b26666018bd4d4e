"""Wan 2.2 image-to-video through diffusers: the model folder, components, condition and prompts.

``flowgen.wan.config`` and ``flowgen.wan.folder`` are torch-free (a CLI can build and check a
config cheaply); ``models``, ``condition`` and ``prompts`` import torch. The prior itself is
``flowgen.rfsds.RFSDSPrior``.
"""

from flowgen.wan.config import WanPriorConfig
from flowgen.wan.folder import ModelFolderError, WanFolder, check_video_shape, validate_model_folder

__all__ = ["ModelFolderError", "WanFolder", "WanPriorConfig", "check_video_shape", "validate_model_folder"]
