"""Throughput and latency of the OpenAI-compatible server under N concurrent clients.

    python bench/server_bench.py --clients 16 --requests 64 --max-tokens 32
    python bench/server_bench.py --url http://gpu-box:30000 --clients 64 --requests 1024

Without ``--url`` a server with the embedded default model is started in-process on a free
loopback port (engine flags such as ``--max-batch-size`` apply to it). Each client sends chat
requests back to back until ``--requests`` have been sent in all; the workload mixes a JSON
Schema, a regex, a choice list and free text (``--workload`` picks one). With ``--stream`` the
time to first token is measured too. Prints one table: requests/s, generated tokens/s, and
latency percentiles (p50/p90/p99) in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WORKLOADS = {
    "json": {"response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
             "whitespace": "compact"},
    "regex": {"regex": r"[0-9]{3}-[0-9]{4}"},
    "choices": {"choices": ["bug", "question", "feature"]},
    "free": {},
}


def body_for(i: int, args: argparse.Namespace) -> dict:
    kinds = list(WORKLOADS) if args.workload == "mixed" else [args.workload]
    extra = WORKLOADS[kinds[i % len(kinds)]]
    msg = f"Ticket {i}: Ann (31) from Oslo cannot log in; call her at 555-0199."
    return {"model": "default", "messages": [{"role": "user", "content": msg}], "max_tokens": args.max_tokens,
            "temperature": args.temperature, "stream": args.stream, **extra}


async def one_request(client, i: int, args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    body = body_for(i, args)
    if not args.stream:
        resp = await client.post("/v1/chat/completions", json=body)
        resp.raise_for_status()
        usage = resp.json()["usage"]
        return {"latency": time.perf_counter() - t0, "tokens": usage["completion_tokens"], "ttft": None}
    ttft, tokens = None, 0
    body["stream_options"] = {"include_usage": True}
    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if ttft is None and chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                ttft = time.perf_counter() - t0
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return {"latency": time.perf_counter() - t0, "tokens": tokens, "ttft": ttft}


async def run_load(url: str, args: argparse.Namespace) -> tuple[list[dict], float]:
    import httpx

    counter = iter(range(args.requests))
    out: list[dict] = []
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as client:
        async def worker():
            for i in counter:
                out.append(await one_request(client, i, args))

        # Warm-up: compile every workload's constraint once, outside the measurement.
        for i in range(len(WORKLOADS)):
            await one_request(client, i, args)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.clients)))
        return out, time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k] * 1000


def report(results: list[dict], wall: float, args: argparse.Namespace, target: str) -> None:
    lat = [r["latency"] for r in results]
    ttft = [r["ttft"] for r in results if r["ttft"] is not None]
    tokens = sum(r["tokens"] for r in results)
    print(f"target: {target}   workload: {args.workload}   max_tokens: {args.max_tokens}   stream: {args.stream}")
    print()
    print("| clients | requests | wall s | req/s | gen tok/s | p50 ms | p90 ms | p99 ms | mean ms |" + (" TTFT p50 ms |" if ttft else ""))
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if ttft else ""))
    row = (f"| {args.clients} | {len(results)} | {wall:.2f} | {len(results) / wall:.2f} | {tokens / wall:.1f} | "
           f"{pct(lat, 50):.0f} | {pct(lat, 90):.0f} | {pct(lat, 99):.0f} | {statistics.mean(lat) * 1000:.0f} |")
    print(row + (f" {pct(ttft, 50):.0f} |" if ttft else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="an existing server (http://host:port); default: start one with the default model")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--requests", type=int, default=64, help="requests in all (default 64)")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--workload", choices=["mixed", *WORKLOADS], default="mixed")
    p.add_argument("--stream", action="store_true", help="stream responses and measure time to first token")
    p.add_argument("--timeout", type=float, default=600.0, help="per-request timeout in seconds")
    p.add_argument("--max-batch-size", type=int, default=None, help="engine batch size of a server started here")
    args = p.parse_args(argv)
    if args.url:
        results, wall = asyncio.run(run_load(args.url.rstrip("/"), args))
        report(results, wall, args, args.url)
        return 0
    from structgen.server import start_server

    options = {} if args.max_batch_size is None else {"max_batch_size": args.max_batch_size}
    with start_server(**options) as server:
        results, wall = asyncio.run(run_load(server.url, args))
    import platform

    report(results, wall, args, f"in-process server, default model, {platform.processor() or platform.machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
