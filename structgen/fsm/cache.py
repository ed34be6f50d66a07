"""Compile cache for ``TokenFSM``: an in-memory LRU in front of an on-disk store.

Key: sha256 of (format version, ``constraint.key()``, compile options, vocabulary fingerprint).
On disk, under ``assets.cache_dir() / "fsm"`` unless a directory is given, each entry is one
pickle file ``<key[:2]>/<key>.pkl`` holding the FSM without its vocabulary (the caller has
it, and its fingerprint is part of the key). Writes go to a temporary file renamed into place
(``os.replace``) under a per-key file lock, so concurrent processes never read a torn file
and compile a missing entry once. A corrupt or unreadable entry is logged and rebuilt.

``STRUCTGEN_FSM_DISK_CACHE=0`` turns the disk layer of the default cache off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import pickle
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..constraints import as_constraint

log = logging.getLogger(__name__)

FORMAT_VERSION = "structgen-fsm-v2"  # v2: compact loop rows


@functools.cache
def compiler_fingerprint() -> str:
    """Hash of the compiler's own source (every ``structgen/fsm/*.py``): a cached automaton built
    by another version of the compiler, whose language may differ, is never reused."""
    h = hashlib.sha256(FORMAT_VERSION.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:24]


def cache_key(constraint: Any, vocab: Any, options: dict[str, Any]) -> str:
    """Stable hex key of a compiled constraint for a vocabulary under ``options``."""
    c = as_constraint(constraint)
    text = json.dumps([compiler_fingerprint(), c.key(), sorted(options.items()), vocab.fingerprint], default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class FSMCache:
    """LRU of up to ``max_entries`` compiled FSMs in memory, backed by ``directory`` on disk (None: memory only).

    ``get_or_build`` is thread-safe; two threads asking for the same missing key may both build
    it, and the first result stored wins.
    """

    def __init__(self, directory: str | Path | None = None, *, max_entries: int = 64):
        self.directory = Path(directory) if directory is not None else None
        self.max_entries = max_entries
        self._lru: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, constraint: Any, vocab: Any, options: dict[str, Any], build: Callable[[], Any]) -> Any:
        """The cached FSM for the key, else one loaded from disk, else ``build()`` (then stored)."""
        key = cache_key(constraint, vocab, options)
        hit = self._get_memory(key)
        if hit is not None:
            return hit
        fsm = self._load(key, vocab) if self.directory is not None else None
        if fsm is None:
            fsm = self._build_and_save(key, vocab, build)
        return self._put_memory(key, fsm)

    def clear_memory(self) -> None:
        with self._lock:
            self._lru.clear()

    # ------------------------------------------------------------------ memory layer
    def _get_memory(self, key: str) -> Any:
        with self._lock:
            fsm = self._lru.get(key)
            if fsm is not None:
                self._lru.move_to_end(key)
            return fsm

    def _put_memory(self, key: str, fsm: Any) -> Any:
        with self._lock:
            fsm = self._lru.setdefault(key, fsm)
            self._lru.move_to_end(key)
            while len(self._lru) > self.max_entries:
                self._lru.popitem(last=False)
            return fsm

    # ------------------------------------------------------------------ disk layer
    def path_of(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.pkl"

    def _load(self, key: str, vocab: Any) -> Any:
        path = self.path_of(key)
        try:
            with open(path, "rb") as f:
                state = pickle.load(f)
        except FileNotFoundError:
            return None
        except Exception as e:  # noqa: BLE001 - a torn or stale file must never break compilation
            log.warning("ignoring unreadable FSM cache entry %s: %s", path, e)
            return None
        from .index import TokenFSM

        state["vocab"] = vocab
        fsm = TokenFSM.__new__(TokenFSM)
        fsm.__setstate__(state)
        return fsm

    def _build_and_save(self, key: str, vocab: Any, build: Callable[[], Any]) -> Any:
        if self.directory is None:
            return build()
        from filelock import FileLock

        path = self.path_of(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            fsm = self._load(key, vocab)  # another process may have built it while we waited
            if fsm is None:
                fsm = build()
                self._save(path, fsm)
        return fsm

    def save(self, fsm: Any, constraint: Any, options: dict[str, Any]) -> None:
        """Write ``fsm`` (e.g. after more states were expanded) over its disk entry."""
        if self.directory is not None:
            key = cache_key(constraint, fsm.vocab, options)
            self.path_of(key).parent.mkdir(parents=True, exist_ok=True)
            self._save(self.path_of(key), fsm)

    @staticmethod
    def _save(path: Path, fsm: Any) -> None:
        state = fsm.__getstate__()
        state["vocab"] = None
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pkl")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


_DEFAULT: list[FSMCache] = []
_DEFAULT_LOCK = threading.Lock()


def default_cache() -> FSMCache:
    """The process-wide cache: memory LRU plus ``assets.cache_dir() / "fsm"`` (unless disabled by env)."""
    with _DEFAULT_LOCK:
        if not _DEFAULT:
            directory = None
            if os.environ.get("STRUCTGEN_FSM_DISK_CACHE", "1") != "0":
                from ..assets import cache_dir

                directory = cache_dir() / "fsm"
            _DEFAULT.append(FSMCache(directory))
        return _DEFAULT[0]


def resolve_cache(cache: Any) -> FSMCache | None:
    """``True`` -> the default cache, ``False``/``None`` -> no cache, an ``FSMCache`` -> itself."""
    if cache is True:
        return default_cache()
    if cache is False or cache is None:
        return None
    if isinstance(cache, FSMCache):
        return cache
    raise TypeError(f"cache must be a bool or an FSMCache, got {type(cache).__name__}")
