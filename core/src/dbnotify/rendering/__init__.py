"""The one renderer every channel uses."""

from dbnotify.rendering.renderer import (
    SEVERITY_COLORS,
    Renderer,
    files_not_templates,
    one_line,
    template_problem,
)

__all__ = ["SEVERITY_COLORS", "Renderer", "files_not_templates", "one_line", "template_problem"]
