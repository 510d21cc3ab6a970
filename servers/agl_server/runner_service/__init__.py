"""``agl.v1.RunnerService``: rollouts pushed to workers over one Work stream each.

agl-server runs it next to the store service. The protocol is documented in
``protos/agl/v1/runner.proto``.
"""

from agl_server.runner_service.servicer import SERVICE_NAME, RunnerServicer

__all__ = ["SERVICE_NAME", "RunnerServicer"]
