"""Reaching one store from other threads and event loops.

A store lives on one event loop. :class:`SyncStore` gives synchronous code (scripts, notebooks,
threads) the same API as plain calls; :class:`ThreadSafeStore` gives async code running on
*another* loop the same API as coroutines. Both hand each call to the store's loop and wait for
the answer; async iterators (``watch_rollouts``, ``iter_spans``) are bridged item by item.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

from agl_core.store.base import LightningStore


class _LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()
            self.loop.close()

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()
        ready.wait()

    def stop(self) -> None:
        """Cancel what is still running on the loop and wait for it, then stop (as asyncio.run does),
        so no library task (a gRPC call's status watcher, say) is destroyed while pending."""

        async def drain() -> None:
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(drain(), self.loop).result(timeout=10)
        except Exception:  # a task that ignores cancellation must not hang close()
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def _store_loop(store: LightningStore) -> asyncio.AbstractEventLoop | None:
    loop = getattr(store.backend, "loop", None)
    return loop if loop is not None and loop.is_running() else None


class SyncStore:
    """The :class:`LightningStore` API as blocking calls.

    ``SyncStore(LmdbStore(path))`` or ``SyncStore(GrpcStore(address))``: if the store is already
    in use on a running loop (in another thread), calls go there; otherwise the store gets a
    private loop thread of its own. Every method of ``LightningStore`` is available with the same
    arguments; async iterators become plain iterators.
    """

    def __init__(self, store: LightningStore | Callable[[], LightningStore]) -> None:
        self._own: _LoopThread | None = None
        if isinstance(store, LightningStore):
            loop = _store_loop(store)
        else:
            loop = None
        if loop is None:
            self._own = _LoopThread("agl-sync-store")
            loop = self._own.loop
        self._loop = loop
        if not isinstance(store, LightningStore):
            store = self._call_in_loop(_construct(store))
        self.store: LightningStore = store

    def _call_in_loop(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coro.close()
            raise RuntimeError("SyncStore was called from its own event loop; await the async store there instead")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _iterate(self, agen: AsyncIterator[Any]) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self._call_in_loop(agen.__anext__())  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and not self._loop.is_closed():
                self._call_in_loop(aclose())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if inspect.iscoroutinefunction(attr):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._call_in_loop(attr(*args, **kwargs))

        elif inspect.isasyncgenfunction(attr):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._iterate(attr(*args, **kwargs))

        elif callable(attr):

            def call(*args: Any, **kwargs: Any) -> Any:
                result = attr(*args, **kwargs)
                return self._iterate(result) if hasattr(result, "__anext__") else result

        else:
            return attr
        call.__name__ = name
        call.__doc__ = attr.__doc__
        return call

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {n for n in dir(self.store) if not n.startswith("_")})

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the store's calls run on."""
        return self._loop

    def close(self) -> None:
        """Close the store, then stop the private loop thread (if this SyncStore made one)."""
        if self._own is not None and self._own.thread.is_alive():
            self._call_in_loop(self.store.close())
            self._own.stop()

    def __enter__(self) -> SyncStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _construct(factory: Callable[[], LightningStore]) -> LightningStore:
    return factory()


class ThreadSafeStore:
    """The async :class:`LightningStore` API, usable from any event loop: each call runs on the
    loop the store lives on. Give one to coroutines that run on other loops (runner threads)."""

    def __init__(self, store: LightningStore, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.store = store
        self._loop = loop or _store_loop(store) or asyncio.get_running_loop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the store's calls run on."""
        return self._loop

    async def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if asyncio.get_running_loop() is self._loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def _iterate(self, agen: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            while True:
                try:
                    yield await self._call(agen.__anext__())  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and not self._loop.is_closed():
                await self._call(aclose())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if inspect.iscoroutinefunction(attr):

            async def call(*args: Any, **kwargs: Any) -> Any:
                return await self._call(attr(*args, **kwargs))

        elif inspect.isasyncgenfunction(attr):

            def call(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                return self._iterate(attr(*args, **kwargs))

        elif callable(attr):

            def call(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                result = attr(*args, **kwargs)
                return self._iterate(result) if hasattr(result, "__anext__") else result

        else:
            return attr
        call.__name__ = name
        call.__doc__ = attr.__doc__
        return call
