"""The OTLP/gRPC trace receiver of agl-server, as a plugin (``agl_server_services``).

agl-server serves OpenTelemetry's ``TraceService/Export`` on its own port, so any OpenTelemetry
SDK can export spans into rollouts; see :mod:`agl_plugins.otlp.receiver` for how spans are placed.
Block it with ``AGL_DISABLE_PLUGINS=service-otlp``.
"""

from __future__ import annotations

from typing import Any

from agl_core.plugins import hookimpl


@hookimpl
def agl_server_services(backend: Any) -> list[Any]:
    # Imported here: only agl-server (and `agl plugins`) need the receiver, not every runner.
    from agl_plugins.otlp.receiver import OtlpTraceService

    return [OtlpTraceService(backend)]
