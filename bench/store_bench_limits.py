"""store_bench's yardsticks: what this machine does without agl (raw LMDB puts and commits, raw
gRPC streaming and unary round trips against bench/raw_grpc_server.py)."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import grpc
import lmdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ack_floors import FLOORS, start_floor


def raw_lmdb_puts(directory: str, total: int, payload: bytes) -> float:
    env = lmdb.open(os.path.join(directory, "raw-lmdb"), map_size=1 << 34)
    key = struct.Struct(">QIQ")
    written = 0
    started = time.perf_counter()
    while written < total:
        with env.begin(write=True) as txn:  # synced commit, like agl-server's default
            for _ in range(100):
                txn.put(key.pack(written // 1000, 1, written) + b"spanid00", payload)
                written += 1
    elapsed = time.perf_counter() - started
    env.close()
    return written / elapsed


async def raw_grpc_stream(address: str, payload: bytes, per_message: int, messages: int, window: int = 16) -> float:
    """Spans/s through a bare bidi stream with ``per_message`` spans per message, ``window`` in flight."""
    message = b"".join([payload] * per_message)
    async with grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stream = channel.stream_stream("/bench.Raw/Stream", request_serializer=None, response_deserializer=None)
        call = stream()
        started = time.perf_counter()
        sent = received = 0
        while received < messages:
            while sent < messages and sent - received < window:
                await call.write(message)
                sent += 1
            await call.read()
            received += 1
        elapsed = time.perf_counter() - started
        await call.done_writing()
    return messages * per_message / elapsed


async def raw_unary_rate(address: str, calls: int, concurrency: int) -> float:
    """Unary round trips/s to a handler that does nothing: the ceiling of any store call."""
    async with grpc.aio.insecure_channel(address) as channel:
        echo = channel.unary_unary("/bench.Raw/Echo", request_serializer=None, response_deserializer=None)
        await echo(b"warm-up")
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with semaphore:
                await echo(b"x" * 100)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls)))
        return calls / (time.perf_counter() - started)


def raw_commit_latency(directory: str, payload: bytes, commits: int) -> list[float]:
    """Latency of one synced LMDB commit of 10 spans: the floor under an acknowledgement."""
    env = lmdb.open(os.path.join(directory, "raw-commit"), map_size=1 << 30)
    key = struct.Struct(">QIQ")
    latencies = []
    for c in range(commits):
        started = time.perf_counter()
        with env.begin(write=True) as txn:
            for i in range(10):
                txn.put(key.pack(1, 1, c * 10 + i) + b"spanid00", payload)
        latencies.append(time.perf_counter() - started)
    env.close()
    return latencies


def start_raw_server(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    """bench/raw_grpc_server.py, started: the process and its address."""
    return start_floor(FLOORS["grpc.aio"], directory)
