"""Release the calling thread's OpenMP worker threads (CPU inference).

PyTorch's CPU operators run their parallel regions on an OpenMP thread pool, and GNU OpenMP
(libgomp, which the Linux CPU wheels of torch bundle) keeps one pool *per thread that has run a
parallel region*, for as long as that thread lives. Once two threads have run torch operators
(the thread that loaded a model and the thread that decodes), the process holds more pool
threads than cores; libgomp then stops spinning between parallel regions and every region pays
a thread wake-up. On a 2-core machine a decode step ran ~1.8x slower that way.

``release_thread_pool()`` frees the calling thread's pool (``omp_pause_resource_all`` with
``omp_pause_soft``; libgomp pauses only the calling thread's pool). The pool is created again the
next time that thread runs a parallel region, at the cost of starting its threads (microseconds).
``Runtime`` calls it in the thread that built it, and whenever a thread stops stepping the engine,
so only the thread currently decoding holds a pool.

It does nothing (returns False) where the process has no libgomp (other OpenMP runtimes pause
process-wide) or when ``STRUCTGEN_RELEASE_OMP_POOL=0`` is set.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
OMP_PAUSE_SOFT = 1


def _loaded_libgomp() -> str | None:
    """Path of the libgomp this process has loaded (``/proc/self/maps``), else torch's bundled one."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1]
                if "libgomp" in Path(path).name:
                    return path
    except OSError:
        pass
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    found = sorted((Path(torch.__file__).parent / "lib").glob("libgomp*.so*"))
    return str(found[0]) if found else None


@functools.cache
def _pause_fn():
    if os.environ.get("STRUCTGEN_RELEASE_OMP_POOL", "1") == "0":
        return None
    path = _loaded_libgomp()
    if path is None:
        return None
    try:
        fn = ctypes.CDLL(path).omp_pause_resource_all
    except (OSError, AttributeError) as e:  # an old libgomp without OpenMP 5.0 pause
        log.debug("cannot release OpenMP pools through %s: %s", path, e)
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn


def release_thread_pool() -> bool:
    """Free the calling thread's OpenMP worker threads; True when they were released (or there
    were none). Never call it from inside a parallel region (it then returns False)."""
    fn = _pause_fn()
    return fn is not None and fn(OMP_PAUSE_SOFT) == 0
