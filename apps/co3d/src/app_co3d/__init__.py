"""The Co3D app of lesson-splats: its reader (`data`), raw Co3D v2 preprocessing (`preprocess`), synthetic
hydrant-like sequences (`synthetic`), experiment presets (`experiment`), evaluation protocol (`protocol`) and the app
object the shared commands run (`APP`)."""

from .app import APP

__all__ = ["APP"]
