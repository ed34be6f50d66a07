"""``omp_pool.release_thread_pool`` frees the calling thread's OpenMP workers, torch keeps working
after it, and the Runtime calls it wherever a thread stops stepping the engine on the CPU."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from fake_model import FakeRunner, greedy_reference
from structgen.engine import omp_pool
from structgen.engine import runtime as runtime_mod
from structgen.engine.request import GenerateRequest
from structgen.engine.runtime import Runtime

HAS_GOMP = omp_pool._pause_fn() is not None


def _thread_ids() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def _parallel_work() -> torch.Tensor:
    a = torch.arange(512 * 512, dtype=torch.float32).reshape(512, 512) / 1e5
    return (a @ a).sum(dim=0)  # large enough for a parallel region


@pytest.mark.skipif(not HAS_GOMP, reason="no libgomp in this process (not a Linux CPU build of torch)")
def test_release_frees_this_threads_pool_and_torch_still_works():
    expected = _parallel_work()
    out = {}

    def worker():
        before = _thread_ids()
        first = _parallel_work()  # a new thread: its own OpenMP pool of get_num_threads() - 1 workers
        out["pool"] = _thread_ids() - before
        out["released"] = omp_pool.release_thread_pool()
        for _ in range(100):  # the workers exit as the pool is freed
            out["left"] = out["pool"] & _thread_ids()
            if not out["left"]:
                break
            time.sleep(0.01)
        out["again"] = _parallel_work()  # the pool comes back on demand
        out["first"] = first

    t = threading.Thread(target=worker)
    t.start()
    t.join(60)
    assert out["released"] is True
    torch.testing.assert_close(out["first"], expected)
    torch.testing.assert_close(out["again"], expected)
    if torch.get_num_threads() > 1:  # there were workers to free
        assert out["pool"], "the parallel work started no OpenMP workers"
        assert not out["left"], "the pool's workers are still alive after the release"


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("STRUCTGEN_RELEASE_OMP_POOL", "0")
    omp_pool._pause_fn.cache_clear()
    try:
        assert omp_pool.release_thread_pool() is False
    finally:
        monkeypatch.undo()
        omp_pool._pause_fn.cache_clear()


def test_runtime_releases_where_threads_stop_stepping(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(runtime_mod, "release_thread_pool", lambda: calls.append(threading.current_thread().name))
    rt = Runtime(runner=FakeRunner(), kv_cache_tokens=1024)
    try:
        assert calls == [threading.main_thread().name]  # the thread that built it (and loaded the model)
        rt.generate("main", max_tokens=3)  # main thread steps; the background thread never did: nothing more
        assert calls == [threading.main_thread().name]
        out = []
        t = threading.Thread(target=lambda: out.extend(rt.generate("other", max_tokens=4)), name="caller")
        t.start()
        t.join(30)
        assert out[0].token_ids == greedy_reference(rt.runner, rt.tokenizer.encode("other"), 4)
        for _ in range(100):  # the engine thread parks right after delivering the result
            if "structgen-engine" in calls:
                break
            threading.Event().wait(0.01)
        assert calls[1:] == ["structgen-engine"]
        rt.generate("main again", max_tokens=3)  # the background thread has stepped: main frees its pool after
        assert calls[-1] == threading.main_thread().name
        h = rt.submit(GenerateRequest("later", max_tokens=3))
        assert h.result(timeout=30).completion_tokens == 3
    finally:
        rt.shutdown()
