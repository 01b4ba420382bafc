"""The ShapeNet-SRN app of lesson-splats: its reader (`data`), synthetic objects (`synthetic`), experiment presets
(`experiment`), evaluation protocol (`protocol`) and the app object the shared commands run (`APP`)."""

from .app import APP

__all__ = ["APP"]
