"""``agl-server``: the store daemon on its embedded LMDB store."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agl_core.errors import InvalidArgumentError
from agl_core.plugins import AglPluginManager, PluginError, get_plugin_manager
from agl_core.secrets import exposure_warning, read_token
from agl_core.store.backend import StoreBackend
from agl_core.store.lmdb.backend import DEFAULT_MAP_SIZE, default_data_dir
from agl_server import span_checks, tuning
from agl_server.app import DEFAULT_PORT, AglServer, ServerConfig
from agl_server.logs import setup_logging
from agl_server.retention import RetentionPolicy

logger = logging.getLogger("agl_server")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agl-server",
        description="The agl store and runner service: gRPC on one port, data in an embedded LMDB store.",
    )
    parser.add_argument(
        "--host",
        default=_env("AGL_SERVER_HOST", "127.0.0.1"),
        help="interface to bind (env AGL_SERVER_HOST; default 127.0.0.1, 0.0.0.0 for all)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(_env("AGL_SERVER_PORT", str(DEFAULT_PORT))),
        help=f"port (env AGL_SERVER_PORT; default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=int(os.environ["AGL_HTTP_PORT"]) if os.environ.get("AGL_HTTP_PORT") else None,
        help="also serve HTTP on this port, same host: Prometheus metrics at /metrics, OTLP/HTTP traces at "
        "POST /v1/traces, /healthz (env AGL_HTTP_PORT; default: off, no HTTP listener; 0 picks a free one). "
        "With --token every path but /healthz needs 'Authorization: Bearer <token>', /metrics included; "
        "with --tls-cert it serves HTTPS",
    )
    parser.add_argument(
        "--data-dir", default=default_data_dir(), help="LMDB data directory (env AGL_DATA_DIR; default ./.agl-data)"
    )
    parser.add_argument(
        "--durability",
        choices=("sync", "nosync"),
        default=_env("AGL_DURABILITY", "sync"),
        help="sync: fsync every commit (default); nosync: survive a crash of the process but not "
        "of the machine (env AGL_DURABILITY)",
    )
    parser.add_argument(
        "--map-size", type=int, default=DEFAULT_MAP_SIZE, help="initial LMDB map size in bytes; it doubles when full"
    )
    parser.add_argument(
        "--map-resident-mb",
        type=float,
        default=float(_env("AGL_MAP_RESIDENT_MB", "256")),
        help="MiB of the LMDB data file the server keeps mapped in memory before releasing them to the page "
        "cache (keeps RSS flat as data grows; 0: never release; env AGL_MAP_RESIDENT_MB)",
    )
    parser.add_argument(
        "--span-id-filter-mb",
        type=float,
        default=float(_env("AGL_SPAN_ID_FILTER_MB", "32")),
        help="MiB of memory for the attempts' span-id filters, which recognise resent spans; beyond it the "
        "least recently written attempts' filters are rebuilt from disk when written again (2-4 bytes per "
        "span id; env AGL_SPAN_ID_FILTER_MB)",
    )
    parser.add_argument(
        "--store", default=_env("AGL_STORE", "lmdb"), help="store backend, by plugin name (env AGL_STORE; default lmdb)"
    )
    parser.add_argument(
        "--store-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option for a plugin store backend (repeatable)",
    )
    parser.add_argument(
        "--token",
        help="require 'authorization: Bearer <token>' on every call but health checks; prefer env AGL_TOKEN "
        "or --token-file, since a command line is visible to every user of the machine",
    )
    parser.add_argument("--token-file", type=Path, help="read the token from this file (env AGL_TOKEN_FILE)")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate chain; serve TLS with --tls-key")
    parser.add_argument("--tls-key", type=Path, help="PEM private key")
    parser.add_argument(
        "--max-message-mb",
        type=float,
        default=16.0,
        help="largest request in MiB; larger ones get RESOURCE_EXHAUSTED (default 16)",
    )
    parser.add_argument(
        "--ingest-budget-mb",
        type=float,
        default=256.0,
        help="memory in MiB for span batches read and not yet stored, across all IngestSpans streams; "
        "past it streams are read more slowly (default 256)",
    )
    parser.add_argument(
        "--retention",
        metavar="AGE",
        default=_env("AGL_RETENTION", "") or None,
        help="delete finished rollouts (with attempts and spans) that ended more than AGE ago, e.g. 7d, 12h, "
        "30m; checked in the background (env AGL_RETENTION; default: keep everything)",
    )
    parser.add_argument(
        "--retention-statuses",
        metavar="LIST",
        help="which finished statuses --retention deletes, comma-separated (default succeeded,failed,cancelled)",
    )
    parser.add_argument(
        "--retention-interval",
        metavar="AGE",
        help="how often --retention looks for old rollouts (default 10m, or AGE when that is shorter)",
    )
    parser.add_argument("--grace", type=float, default=5.0, help="seconds calls get to finish on shutdown")
    parser.add_argument("--log-format", choices=("text", "json"), default=_env("AGL_LOG_FORMAT", "text"))
    parser.add_argument("--log-level", default=_env("AGL_LOG_LEVEL", "info"))
    parser.add_argument(
        "--ready-file", type=Path, help='once serving, write {"port", "pid", "address"} as JSON to this file'
    )
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    token = read_token(args.token, args.token_file, env="AGL_TOKEN")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("agl-server: --tls-cert and --tls-key go together")
    if args.ingest_budget_mb <= 0:
        raise SystemExit("agl-server: --ingest-budget-mb must be positive")
    if args.span_id_filter_mb <= 0:
        raise SystemExit("agl-server: --span-id-filter-mb must be positive (AGL_SPAN_ID_FILTER_MB)")
    retention = None
    if args.retention:
        try:
            retention = RetentionPolicy.from_flags(args.retention, args.retention_statuses, args.retention_interval)
        except InvalidArgumentError as exc:
            raise SystemExit(f"agl-server: {exc}") from None
    elif args.retention_statuses or args.retention_interval:
        raise SystemExit("agl-server: --retention-statuses and --retention-interval need --retention AGE")
    return ServerConfig(
        retention=retention,
        host=args.host,
        port=args.port,
        token=token or None,
        tls_cert=args.tls_cert.read_bytes() if args.tls_cert else None,
        tls_key=args.tls_key.read_bytes() if args.tls_key else None,
        max_message_bytes=int(args.max_message_mb * 1024 * 1024),
        grace=args.grace,
        ingest_budget_bytes=int(args.ingest_budget_mb * 1024 * 1024),
        http_port=args.http_port,
    )


def open_backend(args: argparse.Namespace, pm: AglPluginManager) -> StoreBackend:
    provider = pm.lookup("store_backends", args.store)
    options: dict[str, object] = {}
    if args.store == "lmdb":
        options = {
            "map_size": args.map_size,
            "sync": args.durability == "sync",
            "resident_budget": int(args.map_resident_mb * 2**20),
            "span_id_filter_budget": int(args.span_id_filter_mb * 2**20),
        }
    for item in args.store_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"agl-server: --store-option {item!r} is not KEY=VALUE")
        options[key] = value
    return provider.factory(args.data_dir, **options)  # type: ignore[no-any-return]


def extra_services(pm: AglPluginManager, backend: StoreBackend) -> list[object]:
    """Services plugins add to the server; a plugin that fails is reported and left out."""
    services: list[object] = []
    for impl in pm.hook.agl_server_services.get_hookimpls():
        try:
            services.extend(impl.function(backend=backend) or ())
        except Exception as exc:
            logger.error("plugin %r failed to provide its agl-server services: %s", impl.plugin_name, exc)
    return services


async def serve(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    try:
        interpreter = tuning.Tuning.from_env()
        edge_check = span_checks.use_edge_check()  # AGL_EDGE_CHECK
    except ValueError as exc:
        raise SystemExit(f"agl-server: {exc}") from None
    pm = get_plugin_manager()
    for failure in pm.failures:
        logger.error("%s; agl-server runs without it", failure)
    try:
        backend = open_backend(args, pm)
    except (PluginError, ValueError) as exc:  # ValueError: a backend's option (AGL_SPAN_LOOP, AGL_INLINE_COMMITS)
        raise SystemExit(f"agl-server: {exc}") from None
    config.extra_services = extra_services(pm, backend)
    server = AglServer(backend, config)
    port = await server.start()
    server.install_signal_handlers(asyncio.get_running_loop())
    address = f"{config.host}:{port}"
    logger.info(
        "agl-server listening on %s",
        address,
        extra={
            "data_dir": args.data_dir,
            "durability": args.durability,
            "tls": bool(config.tls_cert),
            "auth": bool(config.token),
            # The LMDB store's span loop ("compiled" or "python", span_path.py); other backends have none.
            "span_loop": getattr(backend, "span_loop", None),
            # Whether a lone stream's writes commit on the event loop (AGL_INLINE_COMMITS, writer.py).
            "inline_commits": getattr(backend, "inline_commits", None),
            # How span batches are checked at the edge ("wire" or "parse", span_checks.py).
            "edge_check": edge_check,
        },
    )
    warning = exposure_warning(
        "agl-server", config.host, token=bool(config.token), tls=bool(config.tls_cert), token_hint="AGL_TOKEN"
    )
    if warning:
        logger.warning(warning)
    ready = {"port": port, "pid": os.getpid(), "address": address}
    if server.http_port is not None:
        scheme = "https" if config.tls_cert else "http"
        ready["http_port"] = server.http_port
        logger.info(
            "HTTP listener on %s://%s:%d (/metrics, /v1/traces, /healthz)",
            scheme,
            config.host,
            server.http_port,
            extra={"http_port": server.http_port},
        )
    interpreter.apply_after_start()  # start-up is over: see agl_server.tuning
    metrics = server.metrics
    pinning = interpreter.start_pinning(metrics.python_cpu_pinned if metrics is not None else None)
    if args.ready_file:
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ready))
        tmp.replace(args.ready_file)  # atomic: readers never see half a file
    try:
        await server.wait_closed()
    finally:
        if pinning is not None:
            pinning.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.data_dir = os.path.abspath(args.data_dir)
    # The store imports numpy once an attempt's span-id filter grows large (span_ids), for bit
    # operations only; its OpenBLAS would start a thread per core, unpinned, that nothing here uses.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    setup_logging(args.log_format, args.log_level)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # uvloop is not available on this platform
        runner = asyncio.Runner()
    try:
        with runner:
            runner.run(serve(args))
    except OSError as exc:
        print(f"agl-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
