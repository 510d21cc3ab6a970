"""``agl.v1.RunnerService``: one Work stream per worker (see ``protos/agl/v1/runner.proto``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc

from agl_core.errors import AglError
from agl_core.proto import runner_pb2 as r
from agl_core.proto import types_pb2 as t
from agl_core.runner.queue_signal import QueueSignal, backend_follow
from agl_core.store import routing, validation
from agl_core.store.backend import StoreBackend
from agl_core.store.request_checks import check_request
from agl_core.types.values import from_struct
from agl_server.runner_service.attempt_heartbeats import AttemptHeartbeats
from agl_server.runner_service.dispatcher import Dispatcher
from agl_server.runner_service.recovery import recover_orphans
from agl_server.runner_service.session import SessionEnded, WorkSession
from agl_server.runner_service.worker_writes import WorkerWrites

logger = logging.getLogger("agl_server")

SERVICE_NAME = "agl.v1.RunnerService"
DEFAULT_HEARTBEAT_INTERVAL = 10.0
# After a restart, workers whose streams the last server life had open get this long to reconnect.
RECONNECT_GRACE_ENV = "AGL_RUNNER_RECONNECT_GRACE"
DEFAULT_RECONNECT_GRACE = 30.0
# A worker silent for three intervals is gone; longer intervals would hide dead workers for hours.
MAX_HEARTBEAT_INTERVAL = 3600.0
# The first message must come this soon after the stream opens.
HELLO_TIMEOUT = 30.0


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()


class RunnerServicer:
    """Serves RunnerService over one store backend.

    :param shutting_down: set by the server before it stops; open streams then end with
        UNAVAILABLE and their attempts keep running (the workers reconnect to the next server).
    """

    def __init__(
        self,
        backend: StoreBackend,
        shutting_down: asyncio.Event | None = None,
        *,
        reconnect_grace: float | None = None,
    ) -> None:
        self.backend = backend
        self.shutting_down = shutting_down or asyncio.Event()
        self.signal = QueueSignal(backend_follow(backend), name="agl-server-queue-signal")
        self.dispatcher = Dispatcher(backend, self.signal)
        self.worker_writes = WorkerWrites(backend)
        self.attempt_heartbeats = AttemptHeartbeats(backend)
        self.sessions: dict[str, WorkSession] = {}
        if reconnect_grace is None:
            reconnect_grace = float(os.environ.get(RECONNECT_GRACE_ENV, DEFAULT_RECONNECT_GRACE))
        self.reconnect_grace = reconnect_grace
        self._closing: set[asyncio.Task[None]] = set()
        self._shutdown_watch: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[int] | None = None
        self._started_ns = 0  # when start() ran: attempts before it are of an earlier server life
        # Work streams being served (a reconnecting worker may briefly have two): a metrics gauge.
        self.open_streams = 0

    def start(self) -> None:
        """Once the store is open: give workers of an earlier server life ``reconnect_grace``
        seconds to come back, then give up the attempts of those that did not."""
        self._started_ns = time.time_ns()
        self._recovery = asyncio.create_task(self._recover_orphans(), name="agl-runner-recovery")

    async def _recover_orphans(self) -> int:
        await asyncio.sleep(self.reconnect_grace)
        try:
            holding = {worker: set(session.active) for worker, session in self.sessions.items()}
            return await recover_orphans(
                self.backend, connected=set(self.sessions), holding=holding, before_ns=self._started_ns
            )
        except Exception:
            logger.exception("giving up the attempts of workers that did not come back failed")
            return 0

    def register(self, server: grpc.aio.Server) -> list[str]:
        handlers = {
            "Work": grpc.stream_stream_rpc_method_handler(
                self.Work, request_deserializer=r.WorkRequest.FromString, response_serializer=_serialize
            )
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        with contextlib.suppress(AttributeError):  # registered methods skip the generic lookup (grpc >= 1.62)
            server.add_registered_method_handlers(SERVICE_NAME, handlers)
        return [SERVICE_NAME]

    async def close(self) -> None:
        """End every stream (UNAVAILABLE), wait for their cleanup, stop following the queue."""
        for session in list(self.sessions.values()):
            session.stop(grpc.StatusCode.UNAVAILABLE, _SHUTDOWN_MESSAGE, keep_attempts=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        for task in (self._shutdown_watch, self._recovery):
            if task is not None:
                task.cancel()
        await self.dispatcher.close()
        await self.signal.close()

    def _watch_shutdown(self) -> None:
        if self._shutdown_watch is None:
            self._shutdown_watch = asyncio.create_task(self._on_shutdown())

    async def _on_shutdown(self) -> None:
        await self.shutting_down.wait()
        for session in list(self.sessions.values()):
            session.stop(grpc.StatusCode.UNAVAILABLE, _SHUTDOWN_MESSAGE, keep_attempts=True)

    # --- the stream --------------------------------------------------------------------------------

    async def Work(self, requests: AsyncIterator[r.WorkRequest], context: grpc.aio.ServicerContext) -> None:
        self.open_streams += 1
        try:
            await self._work(requests, context)
        finally:
            self.open_streams -= 1

    async def _work(self, requests: AsyncIterator[r.WorkRequest], context: grpc.aio.ServicerContext) -> None:
        if self.shutting_down.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, _SHUTDOWN_MESSAGE)
        self._watch_shutdown()
        stream = requests.__aiter__()
        send_lock = asyncio.Lock()

        async def send(response: r.WorkResponse) -> None:
            async with send_lock:
                await context.write(response)

        try:
            hello = await self._read_hello(stream)
        except (SessionEnded, AglError) as exc:
            await context.abort(exc.code, exc.message)
        session = WorkSession(
            backend=self.backend,
            signal=self.signal,
            worker_id=hello.worker_id or f"wk-{uuid.uuid4().hex[:12]}",
            capacity=hello.capacity,
            heartbeat_interval=(
                hello.heartbeat_interval.ToNanoseconds() / 1e9
                if hello.HasField("heartbeat_interval")
                else DEFAULT_HEARTBEAT_INTERVAL
            ),
            info=from_struct(hello.info),
            route=routing.Route.parse(hello.namespace, hello.queues, hello.label_selector, "hello."),
            start_on_assignment=hello.start_on_assignment,
            send=send,
            is_owner=lambda s: self.sessions.get(s.worker_id) is s,
            dispatcher=self.dispatcher,
            worker_writes=self.worker_writes,
            attempt_heartbeats=self.attempt_heartbeats,
        )
        try:
            await self._open(session, hello)
            welcome = r.WorkerWelcome(
                worker_id=session.worker_id, heartbeat_timeout=_duration(session.heartbeat_timeout)
            )
            await send(r.WorkResponse(welcome=welcome))
            await session.run(stream)
        except AglError as exc:
            session.end = session.end or SessionEnded(exc.code, exc.message)
        finally:
            # The stream may be gone with the handler cancelled: the cleanup runs to its end anyway.
            closing = asyncio.ensure_future(self._close(session))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            await asyncio.shield(closing)
        if session.end is not None:
            await context.abort(session.end.code, session.end.message)

    async def _read_hello(self, stream: AsyncIterator[r.WorkRequest]) -> r.WorkerHello:
        try:
            first = await asyncio.wait_for(anext(stream), HELLO_TIMEOUT)
        except StopAsyncIteration:
            raise SessionEnded(grpc.StatusCode.INVALID_ARGUMENT, "the Work stream ended before its hello") from None
        except TimeoutError:
            raise SessionEnded(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no hello within {HELLO_TIMEOUT:g}s; the first message of a Work stream must be a hello",
            ) from None
        if first.WhichOneof("kind") != "hello":
            raise SessionEnded(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the first message of a Work stream must be a hello, not {first.WhichOneof('kind') or 'empty'}",
            )
        hello = first.hello
        check_request(hello, "hello")  # timestamps, durations, ids, finite numbers in info
        validation.optional_id(hello.worker_id, "hello.worker_id")
        if hello.capacity < 0:
            raise SessionEnded(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"hello.capacity is {hello.capacity}; it must be 0 or more (attempts the worker runs at once)",
            )
        if hello.HasField("heartbeat_interval") and not 0 < hello.heartbeat_interval.ToNanoseconds() <= (
            MAX_HEARTBEAT_INTERVAL * 1_000_000_000
        ):
            raise SessionEnded(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"hello.heartbeat_interval must be positive and at most {MAX_HEARTBEAT_INTERVAL:g} seconds (one "
                "hour); leave it unset for the default of 10 seconds",
            )
        for i, ref in enumerate(hello.active_attempts):
            validation.require_id(ref.rollout_id, f"hello.active_attempts[{i}].rollout_id")
            validation.require_id(ref.attempt_id, f"hello.active_attempts[{i}].attempt_id")
        routing.Route.parse(hello.namespace, hello.queues, hello.label_selector, "hello.")
        return hello

    async def _open(self, session: WorkSession, hello: r.WorkerHello) -> None:
        listed = {ref.attempt_id for ref in hello.active_attempts}
        previous = self.sessions.get(session.worker_id)
        self.sessions[session.worker_id] = session
        if previous is not None:
            # A reconnect whose old stream the server has not seen break yet: the old stream ends,
            # the attempts the worker still runs move over, the others are given up.
            session.active.update(previous.transfer(listed))
            previous.stop(
                grpc.StatusCode.ABORTED,
                f"worker {session.worker_id!r} opened a newer Work stream, which replaces this one",
            )
        await session.adopt(list(hello.active_attempts))
        await session.update_worker(status=t.WORKER_STATUS_BUSY if session.active else t.WORKER_STATUS_IDLE)
        logger.info(
            "worker %s connected to namespace %s, queues %s%s (capacity %d%s)",
            session.worker_id,
            session.route.namespace,
            ",".join(session.route.queues),
            f", selector {session.route.selector.text!r}" if session.route.selector.text else "",
            session.capacity,
            f", {len(session.active)} attempt(s) still running" if session.active else "",
            extra={
                "event": "worker_connected",
                "worker_id": session.worker_id,
                "capacity": session.capacity,
                "attempts_running": len(session.active),
            },
        )

    async def _close(self, session: WorkSession) -> None:
        held = len(session.active)
        try:
            await session.close()
        finally:
            if self.sessions.get(session.worker_id) is session:
                del self.sessions[session.worker_id]
            end = session.end
            reason = f"{end.code.name}: {end.message}" if end is not None else "its Work stream ended"
            logger.info(
                "worker %s disconnected (%s)",
                session.worker_id,
                reason,
                extra={
                    "event": "worker_disconnected",
                    "worker_id": session.worker_id,
                    "reason": reason,
                    "attempts_held": held,
                    "attempts_kept": held if session.keep_attempts else 0,
                },
            )


_SHUTDOWN_MESSAGE = (
    "agl-server is shutting down; reconnect and say hello again, listing the attempts still running in active_attempts"
)


def _duration(seconds: float) -> Any:
    from google.protobuf import duration_pb2

    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration
