"""numba compilation with an on-disk cache only where one can be written.

Static kernels use :func:`jit` (``@numba.njit(parallel=True, cache=True)`` when a cache folder
is writable, no cache otherwise). Generated kernels (fused elementwise loops) are written as
small Python files into the cache folder and imported, so numba's file-based cache applies to
them too; when the folder is not writable they are exec'd in memory and compiled uncached.

The cache folder is ``$NUMBA_CACHE_DIR/onnxep_numba`` when ``NUMBA_CACHE_DIR`` is set, else
``$XDG_CACHE_HOME/onnxep_numba`` (``~/.cache/onnxep_numba``). numba itself honours
``NUMBA_CACHE_DIR`` for the static kernels.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba

__all__ = ["cache_dir", "jit", "load_generated"]

#: Options every kernel is compiled with: numpy's error model (x / 0 is inf, not an
#: exception), no fast-math (results stay IEEE-exact), threads through ``prange``.
OPTIONS: dict[str, Any] = {"error_model": "numpy", "fastmath": False, "nogil": True}


@functools.lru_cache(maxsize=1)
def cache_dir() -> Path | None:
    """The writable folder for generated sources and their numba caches, or None."""
    base = os.environ.get("NUMBA_CACHE_DIR")
    if base:
        folder = Path(base) / "onnxep_numba"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = Path(xdg) / "onnxep_numba"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe"):
            pass
    except OSError:
        return None
    return folder


def jit(fn: Callable[..., Any] | None = None, *, parallel: bool = True) -> Any:
    """``numba.njit`` with the provider's options, cached on disk when possible.

    Compilation is lazy: the first call with a new signature compiles (or loads the cache).
    """

    def wrap(f: Callable[..., Any]) -> Any:
        try:
            return _fresh_cache(numba.njit(parallel=parallel, cache=True, **OPTIONS)(f))
        except RuntimeError:  # numba found no writable cache location for this file
            return numba.njit(parallel=parallel, cache=False, **OPTIONS)(f)

    return wrap if fn is None else wrap(fn)


STAMP_FILE = "onnxep_numba.sources"
_checked: set[str] = set()


@functools.lru_cache(maxsize=1)
def _sources_digest() -> str:
    """A digest of this package's sources."""
    digest = hashlib.sha1()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _fresh_cache(dispatcher: Any) -> Any:
    """Drop the cached machine code in ``dispatcher``'s cache folder when this package's
    sources changed since it was written.

    numba checks a cached kernel against its own file's timestamp only, so after an edit to
    a helper in another module (a ``git pull`` in an editable install) the kernels calling
    it would load stale code. A digest of all the package's sources is kept beside the cache
    files; when it differs, the folder's cache files are removed (they are recompiled on
    first use). The folders hold this package's kernels only (numba's in-tree ``__pycache__``
    or its per-source-folder path under ``NUMBA_CACHE_DIR``; generated kernels have their own).
    """
    folder = getattr(getattr(dispatcher, "_cache", None), "_cache_path", None)
    if not folder or folder in _checked:
        return dispatcher
    _checked.add(folder)
    stamp = Path(folder) / STAMP_FILE
    try:
        if stamp.exists() and stamp.read_text() == _sources_digest():
            return dispatcher
        for cached in Path(folder).glob("*.nb[ic]"):
            cached.unlink(missing_ok=True)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(_sources_digest())
    except OSError:
        pass  # a read-only cache: numba then compiles in memory where it cannot load
    return dispatcher


_loaded: dict[str, Any] = {}


def load_generated(source: str, name: str) -> Any:
    """The jitted function ``name`` defined by generated ``source`` (a whole module).

    The module is written once to the cache folder under a name derived from its text, so
    numba's disk cache stays valid across processes; without a writable folder it is exec'd
    in memory and compiled uncached.
    """
    digest = hashlib.sha1(source.encode()).hexdigest()[:20]
    module_name = f"onnxep_numba_gen_{digest}"
    if module_name in _loaded:
        return getattr(_loaded[module_name], name)
    folder = cache_dir()
    module = None
    if folder is not None:
        module = _import_file(folder, module_name, source)
    if module is None:
        module = _exec_module(module_name, source.replace("cache=True", "cache=False"))
    _loaded[module_name] = module
    return _fresh_cache(getattr(module, name))


def _import_file(folder: Path, module_name: str, source: str) -> Any:
    path = folder / f"{module_name}.py"
    try:
        if not path.exists() or path.read_text() != source:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        # numba finds a function's module through sys.modules (inspect.getmodule); without it
        # the function counts as dynamic and its cache entries cannot be loaded back
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except (OSError, RuntimeError):
        sys.modules.pop(module_name, None)
        return None
    return module


def _exec_module(module_name: str, source: str) -> Any:
    import types

    module = types.ModuleType(module_name)
    exec(compile(source, f"<{module_name}>", "exec"), module.__dict__)
    return module
