"""Load a ``bench/`` script as a module: the evaluation and training code the pipeline tests check
lives in scripts, not in the package."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]


@functools.cache
def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py``, loaded once per test session."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # a dataclass in the script looks its module up there
    spec.loader.exec_module(mod)
    return mod
