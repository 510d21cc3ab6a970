"""The hooks of agl: the reference documentation for plugin authors.

A plugin is a module (or object) with functions named like the specs below, each decorated with
``agl_core.hookimpl``, declared as an entry point in the ``agl`` group of its package::

    [project.entry-points.agl]
    my_plugin = "my_package.agl_plugin"

Provider hooks return what the plugin contributes as ``{registry name: factory}``; a factory is a
class or a callable returning an instance, or its import path ``"package.module:attr"``. Prefer the
import path, and keep the plugin module itself light: every ``agl`` process (agl-server, ``agl
plugins``, each runner) imports every plugin module, but a factory given by its path is imported
only when its name is looked up, so a heavy dependency (openai, torch) costs only the processes
that use it::

    @hookimpl
    def agl_algorithms():
        return {"my-algo": "my_package.algorithm:MyAlgorithm"}

Two plugins that provide the same name conflict: ``agl plugins`` lists the conflict and looking
that name up fails with both plugins named; every other name keeps working.

pluggy always calls hooks with keyword arguments, and an
implementation may take any subset of a spec's parameters. Declare them as ordinary parameters:
pluggy does not see keyword-only ones (after ``*``), and an implementation that uses them fails to
load with an unknown-argument error.

Lifecycle hooks (``agl_on_*``) observe the attempts a runner runs; agl calls each implementation
on its own with the arguments it declares (see :func:`agl_core.plugins.lifecycle.notify`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from agl_core.tracer.base import Tracer
    from agl_core.types.core import AttemptStatus, Rollout
    from agl_core.types.resources import NamedResources
    from agl_core.types.spans import Span

hookspec = pluggy.HookspecMarker("agl")


# --- providers -----------------------------------------------------------------------------------


@hookspec
def agl_algorithms() -> dict[str, Any]:
    """Algorithms, by the name ``Trainer(algorithm="name")`` picks them with.

    A factory builds an :class:`agl_core.algorithm.Algorithm` (keyword arguments come from the
    Trainer's dict form, e.g. ``{"type": "name", "beam_width": 4}``).
    """


@hookspec
def agl_adapters() -> dict[str, Any]:
    """Adapters (spans to training data), by name."""


@hookspec
def agl_tracers() -> dict[str, Any]:
    """Tracers (collect an agent's spans and deliver them to the store), by name."""


@hookspec
def agl_execution_strategies() -> dict[str, Any]:
    """Execution strategies (how algorithm and runners are laid out in threads, processes and
    machines), by name."""


@hookspec
def agl_store_backends() -> dict[str, Any]:
    """Store backends, by the name ``agl-server --store NAME`` picks them with.

    A factory is called with ``path`` (the data directory) and further keyword options, and
    returns an :class:`agl_core.store.backend.StoreBackend`.
    """


@hookspec
def agl_server_services(backend: Any) -> list[Any]:
    """Extra gRPC services agl-server runs on its port next to the store service.

    Return objects with a ``register(server: grpc.aio.Server) -> list[str]`` method that adds
    their handlers to the server and returns the full service names (for reflection).

    :param backend: the store backend the server serves.
    """


# --- lifecycle -----------------------------------------------------------------------------------
#
# agl calls these in the runner's process, on its event loop, around every attempt it runs, always
# with keyword arguments. An implementation takes any subset of the parameters (ordinary ones, as
# pluggy sees no keyword-only ones), may be a coroutine function, and must not block (hand slow
# work to a thread). Each implementation is called on its own: an exception is logged with the
# plugin's name and ignored, so a broken observer neither stops the others nor fails the attempt.


@hookspec
def agl_on_rollout_start(rollout: Rollout, resources: NamedResources, worker_id: str) -> None:
    """An attempt is about to run.

    :param rollout: the rollout, with the attempt in ``rollout.attempt``.
    :param resources: the resources it runs with, by name.
    :param worker_id: the runner's worker id.
    """


@hookspec
def agl_on_trace_start(rollout: Rollout, tracer: Tracer, worker_id: str) -> None:
    """The tracer has opened the attempt's trace context; the agent starts next.

    :param rollout: the rollout, with its attempt.
    :param tracer: the runner's tracer.
    :param worker_id: the runner's worker id.
    """


@hookspec
def agl_on_trace_end(rollout: Rollout, tracer: Tracer, worker_id: str, error: BaseException | None) -> None:
    """The agent has returned (or raised); the trace context is about to close.

    :param rollout: the rollout, with its attempt.
    :param tracer: the runner's tracer.
    :param worker_id: the runner's worker id.
    :param error: what the agent raised, or ``None``.
    """


@hookspec
def agl_on_rollout_end(
    rollout: Rollout,
    status: AttemptStatus,
    spans: list[Span],
    reward: float | None,
    error: BaseException | None,
    worker_id: str,
) -> None:
    """An attempt has finished and its final status is in the store.

    :param rollout: the rollout, with its attempt (as it was when the attempt started).
    :param status: ``succeeded`` or ``failed``.
    :param spans: the spans the runner knows the attempt produced (the tracer's, the returned ones,
        the reward or exception span it wrote); spans sent to the store by other routes are not
        included.
    :param reward: the final reward among those spans, if any.
    :param error: what failed the attempt, or ``None``.
    :param worker_id: the runner's worker id.
    """
