"""A bare gRPC server for the raw baselines of bench/store_bench.py.

``Stream`` receives messages without parsing them and acknowledges each with its length; ``Echo``
returns its request. They are the transport's cost alone, to set agl's figures against. Writes
its port to the file given as argv[1].
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import grpc


async def echo_lengths(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for raw in requests:
        yield len(raw).to_bytes(8, "big")


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
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Raw", handlers),))
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
