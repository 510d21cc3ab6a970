"""``agl-llm-proxy``: the LLM proxy on its own, in front of one or more OpenAI-compatible backends."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from agl_core.secrets import exposure_warning, read_token
from agl_llm_proxy.app import LLMProxy, ProxyConfig

logger = logging.getLogger("agl_llm_proxy")


DESCRIPTION = (
    "OpenAI- and Anthropic-compatible proxy in front of vLLM servers; records every call of a rollout attempt "
    "(/rollout/{rid}/attempt/{aid}/v1/...) as a span in agl-server; Prometheus metrics on /metrics."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agl-llm-proxy", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The proxy's arguments (shared by ``agl-llm-proxy`` and ``agl llm-proxy``)."""
    parser.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="URL",
        help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (repeatable; env AGL_LLM_BACKENDS, "
        "comma-separated)",
    )
    parser.add_argument(
        "--store",
        default=os.environ.get("AGL_SERVER_ADDRESS"),
        metavar="HOST:PORT",
        help="agl-server to record spans in (env AGL_SERVER_ADDRESS); without it calls are passed on unrecorded",
    )
    parser.add_argument(
        "--token",
        help="agl-server's bearer token; prefer env AGL_TOKEN or --token-file (a command line is visible to every "
        "user of the machine)",
    )
    parser.add_argument("--token-file", type=Path, help="read agl-server's token from this file (env AGL_TOKEN_FILE)")
    parser.add_argument(
        "--proxy-token",
        help="require 'Authorization: Bearer <token>' from callers (the OpenAI client's api_key); prefer env "
        "AGL_LLM_PROXY_TOKEN or --proxy-token-file",
    )
    parser.add_argument(
        "--proxy-token-file", type=Path, help="read the callers' token from this file (env AGL_LLM_PROXY_TOKEN_FILE)"
    )
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate chain; serve HTTPS with --tls-key")
    parser.add_argument("--tls-key", type=Path, help="PEM private key")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument(
        "--no-token-ids",
        action="store_true",
        help="do not add return_token_ids to requests (for backends other than vLLM that reject it)",
    )
    parser.add_argument(
        "--native-messages",
        action="store_true",
        help="the backends serve the Anthropic Messages API (/v1/messages) themselves: pass such calls through "
        "instead of translating them into chat completions",
    )
    parser.add_argument(
        "--backend-api-key",
        default=os.environ.get("AGL_LLM_BACKEND_API_KEY"),
        help="bearer token for the backends instead of the caller's (env AGL_LLM_BACKEND_API_KEY)",
    )
    parser.add_argument(
        "--retry-after",
        type=float,
        default=10.0,
        help="seconds a backend that failed to connect is left out (default 10)",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=600.0,
        help="seconds a backend may stay silent before the call fails with 504 (default 600; 0: none)",
    )
    parser.add_argument("--ready-file", type=Path, help='write {"port": N} here once serving (for supervisors)')
    parser.add_argument("--log-level", default="INFO")


async def serve(args: argparse.Namespace) -> None:
    backends = list(args.backend)
    if not backends and os.environ.get("AGL_LLM_BACKENDS"):
        backends = [b for b in os.environ["AGL_LLM_BACKENDS"].split(",") if b.strip()]
    store = None
    if args.store:
        from agl_core.client import GrpcStore

        store = GrpcStore(args.store, token=read_token(args.token, args.token_file, env="AGL_TOKEN"))
        await store.wait_ready()
    else:
        logger.warning("no --store given: calls are passed on but not recorded")
    config = ProxyConfig(
        request_token_ids=not args.no_token_ids,
        native_messages=args.native_messages,
        retry_after=args.retry_after,
        read_timeout=args.read_timeout or None,
        backend_api_key=args.backend_api_key,
        token=read_token(args.proxy_token, args.proxy_token_file, env="AGL_LLM_PROXY_TOKEN", option="--proxy-token"),
        tls_cert=str(args.tls_cert) if args.tls_cert else None,
        tls_key=str(args.tls_key) if args.tls_key else None,
    )
    proxy = LLMProxy(backends, store=store, host=args.host, port=args.port, config=config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await proxy.start()
    if args.ready_file:
        args.ready_file.write_text(json.dumps({"port": proxy.port}))
    print(f"agl-llm-proxy serving on {proxy.url}", flush=True)
    warning = exposure_warning(
        "agl-llm-proxy",
        args.host,
        token=config.token is not None,
        tls=config.tls_cert is not None,
        token_hint="AGL_LLM_PROXY_TOKEN",
    )
    if warning:
        logger.warning(warning)
    try:
        await stop.wait()
    finally:
        await proxy.stop()
        if store is not None:
            await store.close()


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (the ``agl llm-proxy`` subcommand)."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.backend and not os.environ.get("AGL_LLM_BACKENDS"):
        print("agl llm-proxy: give at least one --backend URL (or set AGL_LLM_BACKENDS)", file=sys.stderr)
        return 2
    if bool(args.tls_cert) != bool(args.tls_key):
        print("agl llm-proxy: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    asyncio.run(serve(args))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    main()
