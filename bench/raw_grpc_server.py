"""A bare gRPC server for the raw baselines of bench/store_bench.py.

``Stream`` receives messages without parsing them and acknowledges each with its length; ``Echo``
returns its request. ``agl.v1.LightningStoreService/IngestSpans`` parses each IngestSpansRequest and
acks it with every span accepted, storing nothing: agl's own span writers (agl-loadgen span-ack) run
against it unchanged, so their ack latency here is the floor that grpc.aio alone sets under agl's.
They are the transport's cost alone, to set agl's figures against. Writes its port to the file
given as argv[1].
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import grpc

from agl_core.proto import store_pb2 as s


async def echo_lengths(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for raw in requests:
        yield len(raw).to_bytes(8, "big")


async def ack_batches(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    # The whole parse, as agl-server's edge check does (UTF-8 and depth included), then the ack.
    async for raw in requests:
        request = s.IngestSpansRequest.FromString(raw)
        yield s.IngestSpansResponse(batch_id=request.batch_id, accepted=len(request.spans)).SerializeToString()


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def write_port(port_file: str, port: int) -> None:
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(port_file + ".tmp", port_file)


async def main(port_file: str) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    handlers = {
        "Stream": grpc.stream_stream_rpc_method_handler(echo_lengths),
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
    }
    spans = {"IngestSpans": grpc.stream_stream_rpc_method_handler(ack_batches)}
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler("bench.Raw", handlers),
            grpc.method_handlers_generic_handler("agl.v1.LightningStoreService", spans),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    write_port(port_file, port)
    await server.wait_for_termination()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main(sys.argv[1]))
    except ImportError:
        asyncio.run(main(sys.argv[1]))
