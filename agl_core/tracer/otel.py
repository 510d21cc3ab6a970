"""The OpenTelemetry tracer: every span an agent's attempt produces streams to the store.

:class:`OtelTracer` (plugin name ``otel``) puts one span processor on the OpenTelemetry tracer
provider of the process: its own provider if none is set, the user's SDK provider otherwise (so
spans of any OpenTelemetry instrumentation the agent uses are collected too). A trace context
opens a root span for the attempt; every span that starts under it belongs to the attempt and,
when it ends, is converted to an ``agl.v1.Span`` on the thread that ended it and queued for the
store (see :mod:`agl_core.tracer.delivery`). The context exits once the store has acknowledged
every one of its spans.

Usage::

    tracer = OtelTracer()
    tracer.init()
    async with tracer.trace_context("my-agent", store=store, rollout_id=r.rollout_id,
                                    attempt_id=r.attempt.attempt_id) as trace:
        await agent(...)            # LLM calls and emit_reward() become spans of the attempt
    trace.spans                     # what was recorded, all of it acknowledged by now
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

from agl_core import semconv
from agl_core.proto.trace_pb2 import Span
from agl_core.store.base import LightningStore
from agl_core.store.sync import SyncStore, ThreadSafeStore, _LoopThread, _store_loop
from agl_core.tracer import context as agl_context
from agl_core.tracer.base import Tracer
from agl_core.tracer.delivery import SpanSink, TraceCollector
from agl_core.tracer.provider import AglSpanProcessor, install

logger = logging.getLogger(__name__)

SCOPE = "agl"


def _resolve_store(store: Any) -> tuple[LightningStore, asyncio.AbstractEventLoop | None]:
    """The store object to call and the loop it lives on (None: not bound to a loop yet)."""
    if isinstance(store, (SyncStore, ThreadSafeStore)):
        return store.store, store.loop
    if isinstance(store, LightningStore):
        return store, _store_loop(store)
    raise TypeError(
        "store must be a LightningStore (LmdbStore, GrpcStore), SyncStore or ThreadSafeStore, not "
        f"{type(store).__name__}"
    )


class OtelTracer(Tracer):
    """Collects the spans of each attempt through OpenTelemetry and streams them to the store.

    :param instrument_openai: make every ``openai`` chat/text completion a span (on in :meth:`init`).
    :param instrument: names of well-kept framework instrumentations to turn on in :meth:`init`
        (``"langchain"``, ``"openai-agents"``, ``"openai-v2"``, ``"litellm"``, ``"anthropic"``, ...,
        or ``"module:Class"``): see :mod:`agl_core.instrumentation.thirdparty`. Each needs its
        extra installed; a missing one raises an ImportError naming the extra.
    :param request_token_ids: ask the LLM server for token ids on every call (``return_token_ids``,
        which vLLM understands; OpenAI's own API rejects it, so it is off by default).
    :param resource_attributes: OpenTelemetry resource of agl's provider (if agl creates it).
    :param keep_spans: keep each trace's spans in memory (:meth:`get_last_trace`, ``trace.spans``).
    :param max_batch_spans: spans per store call.
    :param max_inflight_batches: store calls awaiting acknowledgement at once (per store).
    :param max_queued_spans: spans queued per store before agent threads wait for the store.
    """

    def __init__(
        self,
        *,
        instrument_openai: bool = True,
        instrument: Sequence[str] = (),
        request_token_ids: bool = False,
        resource_attributes: Mapping[str, Any] | None = None,
        keep_spans: bool = True,
        max_batch_spans: int = 512,
        max_inflight_batches: int = 4,
        max_queued_spans: int = 8192,
    ) -> None:
        self.instrument_openai = instrument_openai
        self.instrument = list(instrument)
        if self.instrument:  # a typo or a missing extra fails here, not at the first rollout
            from agl_core.instrumentation.thirdparty import check

            check(self.instrument)
        self._frameworks: Any = None
        self.request_token_ids = request_token_ids
        self.resource_attributes = dict(resource_attributes or {})
        self.keep_spans = keep_spans
        self._sink_options = {
            "max_batch_spans": max_batch_spans,
            "max_inflight_batches": max_inflight_batches,
            "max_queued_spans": max_queued_spans,
        }
        self._provider: TracerProvider | None = None
        self._otel_tracer: trace.Tracer | None = None
        self._sinks: dict[int, SpanSink] = {}
        self._sinks_lock = threading.Lock()
        self._loop_thread: _LoopThread | None = None
        self._last: TraceCollector | None = None
        self._instrumented = False
        self.worker_id: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def init(self, **kwargs: Any) -> None:
        """Install the span processor and (unless turned off) the OpenAI instrumentation."""
        if self._provider is None:
            self._provider = install(self.resource_attributes)
            self._otel_tracer = self._provider.get_tracer(SCOPE)
        if self.instrument_openai and not self._instrumented:
            from agl_core.instrumentation.openai import instrument_openai

            instrument_openai(request_token_ids=self.request_token_ids)
            self._instrumented = True
        if self.instrument and self._frameworks is None:
            from agl_core.instrumentation.thirdparty import instrument

            self._frameworks = instrument(self.instrument, self._provider)

    def teardown(self) -> None:
        """Remove the OpenAI instrumentation and deliver what is still queued."""
        if self._instrumented:
            from agl_core.instrumentation.openai import uninstrument_openai

            uninstrument_openai()
            self._instrumented = False
        if self._frameworks is not None:
            self._frameworks.undo()
            self._frameworks = None
        with self._sinks_lock:
            sinks, self._sinks = list(self._sinks.values()), {}
        for sink in sinks:
            self._close_sink(sink)
        if self._loop_thread is not None:
            self._loop_thread.stop()
            self._loop_thread = None

    def init_worker(self, worker_id: str, **kwargs: Any) -> None:
        self.init()
        self.worker_id = worker_id

    def teardown_worker(self, worker_id: str) -> None:
        self.worker_id = None

    @staticmethod
    def _close_sink(sink: SpanSink) -> None:
        if not sink.loop.is_running():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is sink.loop:
            sink.loop.create_task(sink.aclose())
        else:
            asyncio.run_coroutine_threadsafe(sink.aclose(), sink.loop).result(60)

    # --- trace contexts ----------------------------------------------------------------------------

    def trace_context(
        self,
        name: str | None = None,
        *,
        store: Any = None,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
    ) -> TraceScope:
        """An async context for one attempt; yields its :class:`TraceCollector`.

        :raises ValueError: with a store but without ``rollout_id`` and ``attempt_id``.
        :raises AglError: on exit (when the body itself succeeded) if some spans could not be stored;
            the message says how many and why.
        """
        return TraceScope(self, name, store, rollout_id, attempt_id)

    def trace_context_sync(
        self,
        name: str | None = None,
        *,
        store: Any = None,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
    ) -> TraceScope:
        """:meth:`trace_context` as a plain ``with`` block (blocks on exit until spans are stored)."""
        return TraceScope(self, name, store, rollout_id, attempt_id)

    def get_last_trace(self) -> list[Span]:
        return list(self._last.spans) if self._last is not None else []

    def _sink(self, store: Any, *, sync: bool) -> SpanSink:
        base, loop = _resolve_store(store)
        with self._sinks_lock:
            sink = self._sinks.get(id(base))
            if sink is not None and sink.store is base:
                return sink
            if loop is None:
                try:
                    running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if not sync and running is not None:
                    loop = running  # the store binds to this loop on its first call
                elif running is None:
                    if self._loop_thread is None:
                        self._loop_thread = _LoopThread("agl-tracer-store")
                    loop = self._loop_thread.loop
                else:
                    raise RuntimeError(
                        "trace_context_sync was given a store that is not running on any event "
                        "loop, from code "
                        "running on an event loop; use `async with tracer.trace_context(...)` here, or pass "
                        "SyncStore(store)"
                    )
            sink = SpanSink(base, loop, **self._sink_options)
            self._sinks[id(base)] = sink
            return sink

    def _open(
        self, name: str | None, store: Any, rollout_id: str | None, attempt_id: str | None, *, sync: bool
    ) -> TraceCollector:
        self.init()
        if store is not None and (not rollout_id or not attempt_id):
            raise ValueError(
                "trace_context needs rollout_id and attempt_id to deliver spans to a store (take "
                "them from the "
                "dequeued rollout: rollout.rollout_id, rollout.attempt.attempt_id)"
            )
        sink = self._sink(store, sync=sync) if store is not None else None
        if sync and sink is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is sink.loop:
                raise RuntimeError(
                    "trace_context_sync cannot run on the event loop its store lives on: waiting "
                    "for the store "
                    "there would stop the store. Use `async with tracer.trace_context(...)` instead"
                )
        return TraceCollector(
            name or semconv.SPAN_ROLLOUT, rollout_id or "", attempt_id or "", sink, keep_spans=self.keep_spans
        )


class TraceScope:
    """One trace context, usable with ``with`` and with ``async with``; yields its collector."""

    def __init__(
        self, tracer: OtelTracer, name: str | None, store: Any, rollout_id: str | None, attempt_id: str | None
    ) -> None:
        self._tracer = tracer
        self._args = (name, store, rollout_id, attempt_id)
        self.collector: TraceCollector | None = None
        self._root: Any = None
        self._token: object | None = None

    def _enter(self, *, sync: bool) -> TraceCollector:
        name, store, rollout_id, attempt_id = self._args
        collector = self._tracer._open(name, store, rollout_id, attempt_id, sync=sync)
        assert self._tracer._otel_tracer is not None
        collector.otel_tracer = self._tracer._otel_tracer
        attributes: dict[str, Any] = {
            semconv.ROLLOUT_ID: collector.rollout_id,
            semconv.ATTEMPT_ID: collector.attempt_id,
        }
        if self._tracer.worker_id:
            attributes["agl.worker_id"] = self._tracer.worker_id
        # The root span is started in a context that already names the collector, so the processor
        # routes it (and everything under it) to this trace context.
        ctx = otel_context.set_value(agl_context.COLLECTOR_KEY, collector)
        root = collector.otel_tracer.start_span(collector.name, context=ctx, attributes=attributes)
        collector.trace_id = root.get_span_context().trace_id
        agl_context.register(collector)
        self._token = otel_context.attach(trace.set_span_in_context(root, ctx))
        self._root = root
        self.collector = collector
        return collector

    def _leave(self, exc: BaseException | None) -> TraceCollector:
        collector = self.collector
        assert collector is not None
        if exc is not None and not isinstance(exc, GeneratorExit):
            self._root.record_exception(exc)
            self._root.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self._root.end()
        if self._token is not None:
            otel_context.detach(self._token)
        agl_context.unregister(collector)
        collector.close()
        return collector

    def _finish(self, exc: BaseException | None) -> None:
        collector = self.collector
        assert collector is not None
        self._tracer._last = collector
        if exc is None:
            error = collector.delivery_error()
            if error is not None:
                raise error
        elif collector.delivery_error() is not None:
            logger.error("%s (the trace context also ended with %r)", collector.delivery_error(), exc)

    def __enter__(self) -> TraceCollector:
        return self._enter(sync=True)

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        collector = self._leave(exc)
        collector.wait_delivered_sync()
        self._finish(exc)

    async def __aenter__(self) -> TraceCollector:
        return self._enter(sync=False)

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        collector = self._leave(exc)
        await collector.wait_delivered()
        self._finish(exc)


__all__ = ["AglSpanProcessor", "OtelTracer", "TraceScope", "install"]
