"""``GET /metrics``: Prometheus text exposition format (version 0.0.4), no client library needed.

Two sources. The server's own counters (``ServerMetrics``): HTTP requests by endpoint and status
code, requests in flight, and a request-latency histogram. The runtime's counters, read from
``runtime.stats()`` at scrape time: prompt / cached / generated / forced tokens, preemptions, the
radix-cache hit rate (cached prompt tokens / prompt tokens), queue length, running requests and
the decode step time. A stats key this module does not know is exported as a gauge
``structgen_runtime_<key>`` when its value is a number, so nothing the runtime counts is lost.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from typing import Any, Iterable, Mapping

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# runtime.stats() key -> (metric name, type, help). Keys are tried in order; the first present wins.
RUNTIME_COUNTERS = (
    (("prompt_tokens",), "structgen_prompt_tokens_total", "Prompt tokens of finished and running requests."),
    (("cached_prompt_tokens",), "structgen_cached_prompt_tokens_total", "Prompt tokens served from the radix cache."),
    (("generated_tokens",), "structgen_generated_tokens_total", "Tokens generated (forced tokens included)."),
    (("forced_tokens",), "structgen_forced_tokens_total", "Tokens appended by jump-forward without a forward pass."),
    (("preemptions",), "structgen_preemptions_total", "Running requests preempted for lack of KV slots."),
    (("steps", "num_steps"), "structgen_steps_total", "Engine steps run."),
    (("requests",), "structgen_engine_requests_total", "Requests the engine accepted."),
    (("finished",), "structgen_engine_requests_finished_total", "Requests the engine finished (any reason)."),
    (("forward_tokens",), "structgen_forward_tokens_total", "Tokens run through the model (prefill + decode)."),
)
RUNTIME_GAUGES = (
    (("waiting", "num_waiting", "queue_length"), "structgen_queue_length", "Requests waiting to be admitted."),
    (("running", "num_running"), "structgen_running_requests", "Requests in the running batch."),
    (("kv_slots_used", "kv_used_tokens"), "structgen_kv_slots_used", "KV slots in use."),
    (("kv_slots_total", "kv_cache_tokens"), "structgen_kv_slots_total", "KV slots in the pool."),
    (("kv_slots_free",), "structgen_kv_slots_free", "KV slots free."),
    (("radix_cached_tokens",), "structgen_radix_cached_tokens", "Tokens held by the radix cache."),
)
STEP_TIME_KEYS = ("step_time_s", "step_time")  # a dict: {"count", "sum", "p50", "p90", "p99", ...}


class ServerMetrics:
    """Thread-safe HTTP-side counters; ``observe`` once per finished request."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.in_flight = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0

    def started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one finished request of ``endpoint`` answered with HTTP ``status`` after ``seconds``."""
        with self._lock:
            self.in_flight -= 1
            self.requests[(endpoint, int(status))] += 1
            self.buckets[_bucket(seconds)] += 1
            self.latency_sum += seconds
            self.latency_count += 1

    def render(self) -> list[str]:
        with self._lock:
            lines = _head("structgen_http_requests_total", "counter", "HTTP requests answered, by endpoint and status code.")
            for (endpoint, status), count in sorted(self.requests.items()):
                lines.append(f'structgen_http_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}')
            lines += _head("structgen_http_requests_in_flight", "gauge", "HTTP requests being answered.")
            lines.append(f"structgen_http_requests_in_flight {self.in_flight}")
            lines += _histogram("structgen_request_latency_seconds", "Time from request to last byte of the answer.",
                                self.buckets, self.latency_sum, self.latency_count)
        return lines


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(LATENCY_BUCKETS):
        if seconds <= bound:
            return i
    return len(LATENCY_BUCKETS)


def _head(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _histogram(name: str, help_text: str, buckets: list[int], total: float, count: int) -> list[str]:
    lines = _head(name, "histogram", help_text)
    cumulative = 0
    for bound, n in zip(list(LATENCY_BUCKETS) + [math.inf], buckets):
        cumulative += n
        le = "+Inf" if bound == math.inf else repr(bound)
        lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
    return lines + [f"{name}_sum {_num(total)}", f"{name}_count {count}"]


def _num(x: Any) -> str:
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def runtime_lines(stats: Mapping[str, Any]) -> list[str]:
    """Exposition lines for a ``runtime.stats()`` dict."""
    lines: list[str] = []
    used: set[str] = set()
    for table, kind in ((RUNTIME_COUNTERS, "counter"), (RUNTIME_GAUGES, "gauge")):
        for keys, name, help_text in table:
            key = next((k for k in keys if _is_number(stats.get(k))), None)
            if key is not None:
                used.add(key)
                lines += _head(name, kind, help_text) + [f"{name} {_num(stats[key])}"]
    prompt, cached = stats.get("prompt_tokens"), stats.get("cached_prompt_tokens")
    if _is_number(prompt) and _is_number(cached):
        rate = cached / prompt if prompt else 0.0
        lines += _head("structgen_cache_hit_rate", "gauge", "Cached prompt tokens / prompt tokens.")
        lines.append(f"structgen_cache_hit_rate {_num(rate)}")
    lines += _step_time(stats, used)
    for key, value in sorted(stats.items()):
        if key not in used and _is_number(value) and key.isidentifier():
            name = f"structgen_runtime_{key}"
            lines += _head(name, "gauge", f"runtime.stats()['{key}'].") + [f"{name} {_num(value)}"]
    return lines


def _step_time(stats: Mapping[str, Any], used: set[str]) -> list[str]:
    """A summary from a step-time dict: ``count``, ``sum`` and any ``p<NN>`` quantiles (seconds)."""
    key = next((k for k in STEP_TIME_KEYS if isinstance(stats.get(k), Mapping)), None)
    if key is None:
        return []
    used.add(key)
    st = stats[key]
    name = "structgen_step_seconds"
    lines = _head(name, "summary", "Engine step time.")
    for q, value in sorted(st.items()):
        if isinstance(q, str) and q.startswith("p") and q[1:].isdigit() and _is_number(value):
            lines.append(f'{name}{{quantile="{int(q[1:]) / 100:g}"}} {_num(value)}')
    if _is_number(st.get("sum")) and _is_number(st.get("count")):
        lines += [f"{name}_sum {_num(st['sum'])}", f"{name}_count {_num(st['count'])}"]
    return lines


def render(server: ServerMetrics, stats: Mapping[str, Any], extra: Iterable[str] = ()) -> str:
    """The whole ``/metrics`` body."""
    return "\n".join(list(server.render()) + runtime_lines(stats) + list(extra)) + "\n"
