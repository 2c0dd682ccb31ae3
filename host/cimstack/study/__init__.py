"""Studies that sweep a macro's parameters and write CSV tables and PNG plots.

``study_app`` is the typer sub-app mounted as ``cimstack study``.
"""

from .cli import study_app

__all__ = ["study_app"]
