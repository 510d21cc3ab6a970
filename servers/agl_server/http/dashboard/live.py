"""Live updates for the pages: ``GET /api/events``, the store's rollout watch as server-sent events.

Each status change of a rollout is one event (``id`` = the store's event id, so a browser that
reconnects sends ``Last-Event-ID`` and resumes where it stopped, missing nothing). The pages refresh
what an event touches; nothing polls. A comment line every :data:`KEEPALIVE_S` seconds keeps
proxies from closing an idle stream and finds clients that went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from agl_core.store.base import LightningStore
from agl_server.http.dashboard import views
from agl_server.http.dashboard.api import dumps, error

logger = logging.getLogger("agl_server")

KEEPALIVE_S = 15.0
# Events read ahead of a slow browser; past this the watch waits (the store's log keeps the rest).
QUEUE_EVENTS = 1000

# The queues of the open streams: shutdown ends each stream through its queue.
STREAMS_KEY: web.AppKey[set[asyncio.Queue[bytes]]] = web.AppKey("agl_dashboard_event_streams", set)


def _after_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("after")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError(f"Last-Event-ID (or ?after=) must be an event id (a whole number >= 0), not {raw!r}")
    return int(raw)


class LiveEvents:
    def __init__(self, store: LightningStore) -> None:
        self.store = store

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            after = _after_event_id(request)
        except ValueError as exc:
            return error(400, str(exc))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        streams = request.app[STREAMS_KEY]
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_EVENTS)
        streams.add(queue)
        pump = asyncio.create_task(self._pump(after, queue))
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    chunk = b"" if pump.done() else b": keepalive\n\n"
                if not chunk:  # the watch ended: the store is closing
                    break
                await response.write(chunk)
        except ConnectionResetError:
            pass  # the browser went away
        finally:
            streams.discard(queue)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        return response

    async def _pump(self, after: int | None, queue: asyncio.Queue[bytes]) -> None:
        try:
            async with self.store.watch_rollouts(after_event_id=after, all_namespaces=True) as watch:
                ready = dumps({"last_event_id": watch.last_event_id})
                await queue.put(f"event: ready\ndata: {ready}\n\n".encode())
                async for event in watch:
                    data = {
                        "event_id": event.event_id,
                        "rollout_id": event.rollout_id,
                        "old_status": str(event.old_status) if event.old_status else None,
                        "new_status": str(event.new_status),
                        "time": event.time,
                        "rollout": views.rollout_row(event.rollout, None),
                    }
                    await queue.put(f"id: {event.event_id}\nevent: rollout\ndata: {dumps(data)}\n\n".encode())
        except Exception:
            logger.exception("the dashboard's rollout watch failed; its event stream ends")
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(b"")  # tells the stream to end


async def close_streams(app: web.Application) -> None:
    """On shutdown: end open event streams (cleanly: the browser reconnects and resumes by its last
    event id) so the listener stops at once instead of waiting for clients to leave."""
    for queue in app[STREAMS_KEY]:
        while not queue.empty():  # events not yet sent are dropped: a resuming browser reads them again
            queue.get_nowait()
        queue.put_nowait(b"")
