"""The RealEstate10K app of lesson-splats: its readers (`data`), synthetic rooms (`synthetic`), experiment presets
(`experiment`), Flash3D's split files and border crop (`protocol`), the evaluation protocol (`evaluation`) and the app
object the shared commands run (`APP`)."""

from .app import APP

__all__ = ["APP"]
