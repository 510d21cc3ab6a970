"""agl-server: the store service (and, with plugins, more) over gRPC."""

from agl_server.app import AglServer, ServerConfig

__all__ = ["AglServer", "ServerConfig"]
