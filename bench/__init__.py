"""dbnotify's benchmark (issue 6): ``python3 -m uv run python bench/run.py``.

Not part of any published distribution. See bench/README.md and docs/performance.md.
"""
