"""Where the project's non-Python files live (boards/, hls/, overlay/) and the cache."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def project_root() -> Path:
    """The folder holding boards/, hls/ and overlay/ (``CIMSTACK_HOME`` overrides)."""
    env = os.environ.get("CIMSTACK_HOME")
    root = Path(env) if env else Path(__file__).resolve().parents[2]
    if not (root / "boards").is_dir():
        raise ConfigError(
            f"cimstack cannot find its boards/ folder under {root}; install the package "
            "from a checkout with `pip install -e .` or set CIMSTACK_HOME to the checkout"
        )
    return root


def cache_dir() -> Path:
    """Per-user cache for compiled C-sim libraries and generated handoffs."""
    base = os.environ.get("CIMSTACK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "cimstack"
    )
    path = Path(base)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "it is a file" if isinstance(exc, FileExistsError) else exc.strerror
        raise ConfigError(f"cannot use {path} as the cimstack cache folder ({why}); set "
                          "CIMSTACK_CACHE to a writable folder") from None
    return path
