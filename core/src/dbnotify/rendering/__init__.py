"""The one renderer every channel uses."""

from dbnotify.rendering.renderer import SEVERITY_COLORS, Renderer

__all__ = ["SEVERITY_COLORS", "Renderer"]
