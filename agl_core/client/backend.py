"""The store backend over gRPC: every call goes to agl-server.

Unary calls carry a deadline and are retried on UNAVAILABLE until the retry deadline
(:mod:`agl_core.client.retry`); requests that create rollouts get their ids here, before the
first try, so a retry cannot create a second rollout.
Spans go through one batching, acknowledged stream (:class:`SpanStreamer`). ``watch_rollouts``
survives a server restart: it reconnects and resumes after the last event it delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from agl_core.client.channel import ChannelConfig, create_channel, map_rpc_error
from agl_core.client.ingest import SpanStreamer
from agl_core.client.retry import STREAM_RETRYABLE, UNARY_RETRYABLE, Outage
from agl_core.errors import UnavailableError
from agl_core.proto import store_pb2 as s
from agl_core.proto import store_pb2_grpc, trace_pb2
from agl_core.store.lmdb.records import new_id

logger = logging.getLogger(__name__)

R = TypeVar("R")
# Time the server gets beyond a long poll's own wait before the client gives up on the call.
_POLL_MARGIN = 10.0
# Seconds a DeleteRollouts call may run: deleting millions of spans takes minutes.
DELETE_TIMEOUT = 3600.0


def _name(method: Any) -> str:
    """The RPC's path, for logs (grpc.aio keeps it in a private attribute)."""
    path = getattr(method, "_method", None)
    return path.decode() if isinstance(path, bytes) else "a call"


class GrpcBackend:
    """A :class:`~agl_core.store.backend.StoreBackend` that calls agl-server."""

    name = "grpc"
    # agl-server answers QuerySpans of several rollouts (rollout_ids) in one call.
    queries_many_rollouts = True

    def __init__(self, config: ChannelConfig, **streamer_options: Any) -> None:
        self.config = config
        self._streamer_options = streamer_options
        self._channel: grpc.aio.Channel | None = None
        self._stub: store_pb2_grpc.LightningStoreServiceStub | None = None
        self._streamer: SpanStreamer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def _ensure(self) -> store_pb2_grpc.LightningStoreServiceStub:
        loop = asyncio.get_running_loop()
        if self._stub is None:
            self._loop = loop
            self._channel = create_channel(self.config)
            self._stub = store_pb2_grpc.LightningStoreServiceStub(self._channel)
        elif loop is not self._loop:
            raise RuntimeError(
                "this GrpcStore is bound to the event loop it was first used on; use SyncStore or ThreadSafeStore "
                "from other threads, or create one store per loop"
            )
        return self._stub

    async def _unary(self, method: Callable[..., Awaitable[R]], request: Any, timeout: float | None = None) -> R:
        outage = Outage(self.config.retry_deadline)
        while True:
            try:
                return await method(request, timeout=timeout or self.config.timeout, metadata=self.config.metadata)
            except grpc.aio.AioRpcError as exc:
                wait = outage.failed() if exc.code() in UNARY_RETRYABLE else None
                if wait is None:
                    raise map_rpc_error(exc, self.config.address) from None
                logger.debug("%s failed with %s; retrying in %.2fs", _name(method), exc.code().name, wait)
            await asyncio.sleep(wait)

    async def close(self) -> None:
        if self._streamer is not None:
            await self._streamer.close()
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._stub = self._streamer = None

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the server accepts connections, or raise UnavailableError."""
        self._ensure()
        assert self._channel is not None
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            raise UnavailableError(
                f"agl-server at {self.config.address} did not accept a connection within {timeout:.0f}s. Start it "
                f"with `agl-server --port {self.config.address.rsplit(':', 1)[-1]}`, or point AGL_SERVER_ADDRESS "
                "at a running one."
            ) from None

    # --- unary calls -------------------------------------------------------------------------------

    async def start_rollout(self, request: s.StartRolloutRequest) -> s.StartRolloutResponse:
        if not request.rollout.rollout_id:
            request.rollout.rollout_id = new_id("ro")
        return await self._unary(self._ensure().StartRollout, request)

    async def enqueue_rollouts(self, request: s.EnqueueRolloutsRequest) -> s.EnqueueRolloutsResponse:
        for spec in request.rollouts:
            if not spec.rollout_id:
                spec.rollout_id = new_id("ro")
        return await self._unary(self._ensure().EnqueueRollouts, request)

    async def dequeue_rollout(self, request: s.DequeueRolloutRequest) -> s.DequeueRolloutResponse:
        wait = request.wait.ToNanoseconds() / 1e9 if request.HasField("wait") else 0.0
        return await self._unary(self._ensure().DequeueRollout, request, timeout=self.config.timeout + wait)

    async def start_attempt(self, request: s.StartAttemptRequest) -> s.StartAttemptResponse:
        return await self._unary(self._ensure().StartAttempt, request)

    async def get_rollout(self, request: s.GetRolloutRequest) -> s.GetRolloutResponse:
        return await self._unary(self._ensure().GetRollout, request)

    async def query_rollouts(self, request: s.QueryRolloutsRequest) -> s.QueryRolloutsResponse:
        return await self._unary(self._ensure().QueryRollouts, request)

    async def query_attempts(self, request: s.QueryAttemptsRequest) -> s.QueryAttemptsResponse:
        return await self._unary(self._ensure().QueryAttempts, request)

    async def update_rollout(self, request: s.UpdateRolloutRequest) -> s.UpdateRolloutResponse:
        return await self._unary(self._ensure().UpdateRollout, request)

    async def update_attempt(self, request: s.UpdateAttemptRequest) -> s.UpdateAttemptResponse:
        return await self._unary(self._ensure().UpdateAttempt, request)

    async def add_resources(self, request: s.AddResourcesRequest) -> s.AddResourcesResponse:
        if not request.resources_id:
            request.resources_id = new_id("rs")
        return await self._unary(self._ensure().AddResources, request)

    async def update_resources(self, request: s.UpdateResourcesRequest) -> s.UpdateResourcesResponse:
        return await self._unary(self._ensure().UpdateResources, request)

    async def get_resources(self, request: s.GetResourcesRequest) -> s.GetResourcesResponse:
        return await self._unary(self._ensure().GetResources, request)

    async def query_resources(self, request: s.QueryResourcesRequest) -> s.QueryResourcesResponse:
        return await self._unary(self._ensure().QueryResources, request)

    async def next_sequence_ids(self, request: s.NextSequenceIdsRequest) -> s.NextSequenceIdsResponse:
        return await self._unary(self._ensure().NextSequenceIds, request)

    async def wait_for_rollouts(self, request: s.WaitForRolloutsRequest) -> s.WaitForRolloutsResponse:
        stub = self._ensure()
        if request.HasField("timeout"):
            timeout = request.timeout.ToNanoseconds() / 1e9 + _POLL_MARGIN
            return await self._unary(stub.WaitForRollouts, request, timeout=timeout)
        # No timeout: wait as long as it takes, in long polls, so a server restart shorter than the
        # retry deadline is survived (each poll is a unary call, retried like any other).
        while True:
            poll = s.WaitForRolloutsRequest()
            poll.CopyFrom(request)
            poll.timeout.FromSeconds(60)
            response = await self._unary(stub.WaitForRollouts, poll, timeout=60 + _POLL_MARGIN)
            if not response.pending_rollout_ids:
                return response

    async def query_workers(self, request: s.QueryWorkersRequest) -> s.QueryWorkersResponse:
        return await self._unary(self._ensure().QueryWorkers, request)

    async def get_worker(self, request: s.GetWorkerRequest) -> s.GetWorkerResponse:
        return await self._unary(self._ensure().GetWorker, request)

    async def update_worker(self, request: s.UpdateWorkerRequest) -> s.UpdateWorkerResponse:
        return await self._unary(self._ensure().UpdateWorker, request)

    async def get_stats(self, request: s.GetStatsRequest) -> s.GetStatsResponse:
        return await self._unary(self._ensure().GetStats, request)

    async def delete_rollouts(self, request: s.DeleteRolloutsRequest) -> s.DeleteRolloutsResponse:
        # A large deletion runs for a while (in short transactions on the server); a retry after a
        # lost answer deletes what is left, so retrying is safe.
        return await self._unary(self._ensure().DeleteRollouts, request, timeout=DELETE_TIMEOUT)

    async def backup_store(self, request: s.BackupStoreRequest) -> AsyncIterator[s.BackupStoreResponse]:
        call = self._ensure().BackupStore(request, timeout=None, metadata=self.config.metadata)
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self.config.address) from None
        finally:
            call.cancel()

    # --- streams -----------------------------------------------------------------------------------

    def _span_streamer(self) -> SpanStreamer:
        self._ensure()
        if self._streamer is None:
            assert self._channel is not None
            ingest = self._channel.stream_stream(
                "/agl.v1.LightningStoreService/IngestSpans",
                request_serializer=None,  # the streamer sends pre-serialized batches
                response_deserializer=s.IngestSpansResponse.FromString,
            )
            self._streamer = SpanStreamer(
                lambda: ingest(metadata=self.config.metadata),
                self.config.address,
                retry_deadline=self.config.retry_deadline,
                **self._streamer_options,
            )
        return self._streamer

    async def ingest_spans(self, spans: Sequence[trace_pb2.Span]) -> s.IngestSpansResponse:
        return await self._span_streamer().submit(spans)

    async def flush_spans(self) -> None:
        """Wait until every span handed over so far is acknowledged."""
        if self._streamer is not None:
            await self._streamer.flush()

    async def query_spans(self, request: s.QuerySpansRequest) -> AsyncIterator[s.QuerySpansResponse]:
        call = self._ensure().QuerySpans(request, timeout=None, metadata=self.config.metadata)
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self.config.address) from None
        finally:
            call.cancel()

    async def watch_rollouts(self, request: s.WatchRolloutsRequest) -> AsyncIterator[s.WatchRolloutsResponse]:
        stub = self._ensure()
        last: int | None = request.after_event_id if request.HasField("after_event_id") else None
        outage = Outage(self.config.retry_deadline)
        while True:
            attempt = s.WatchRolloutsRequest()
            attempt.CopyFrom(request)
            if last is not None:
                attempt.after_event_id = last
            call = stub.WatchRollouts(attempt, timeout=None, metadata=self.config.metadata)
            try:
                async for response in call:
                    outage.succeeded()
                    last = response.last_event_id
                    yield response
                return
            except grpc.aio.AioRpcError as exc:
                wait = outage.failed() if exc.code() in STREAM_RETRYABLE else None
                if wait is None:
                    raise map_rpc_error(exc, self.config.address) from None
                logger.info(
                    "watch stream to %s broke (%s); resuming after event %s", self.config.address, exc.code(), last
                )
            finally:
                call.cancel()
            await asyncio.sleep(wait)
