"""The configuration, in layers that import only downwards.

- :mod:`~dbnotify.config.fields`: ``setting()``, validators, ``Duration``, wording helpers;
- :mod:`~dbnotify.config.structure`: cattrs structuring with every issue located;
- :mod:`~dbnotify.config.model`: the classes of the file (``Config`` and its sections);
- :mod:`~dbnotify.config.load`: ``load_config``, the one module here that imports the
  plugin registry and the renderer.

Hosts import ``load_config`` and ``Config`` from :mod:`dbnotify`; plugin authors import
what they need from :mod:`dbnotify.channel`.
"""
