"""Reports: atomic output (``io``), the command line's console (``console``), and
``cimstack report`` (``inputs`` -> ``sections`` with ``figures`` -> ``render``; ``build``
writes the folder, ``cli`` is the command)."""
