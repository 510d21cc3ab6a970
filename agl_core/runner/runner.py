"""``Runner``: serves one agent on a work source, up to ``capacity`` attempts at a time.

For each attempt it reports ``running``, opens the tracer's trace context, calls the agent (a
coroutine on the runner's loop, a plain function in a worker thread), stores what the agent
returned, waits until every span is durable and only then reports the final status, so whoever
sees the status also sees the spans. Hooks and plugin lifecycle hooks run around each attempt.

Stopping: setting the ``stop`` event drains the runner (no new work; attempts it holds finish);
cancelling :meth:`Runner.run` aborts it (attempts are given up as ``unresponsive`` and retried
per their policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pluggy

from agl_core.emitter.reward import find_final_reward
from agl_core.litagent.litagent import LitAgent
from agl_core.plugins.lifecycle import call_accepting, notify
from agl_core.runner.client_finalizers import guard_client_finalizers
from agl_core.runner.hooks import Hook
from agl_core.runner.results import deliver, exception_span
from agl_core.runner.work import Assignment, ReportOutcome, WorkSource
from agl_core.tracer.base import NullTracer, Tracer
from agl_core.types.core import AttemptStatus, RolloutMode
from agl_core.types.spans import Span

logger = logging.getLogger(__name__)


@dataclass
class RunnerStats:
    """What a runner did."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    # Final reports the store did not accept (e.g. the attempt had timed out meanwhile).
    rejected_reports: int = 0


class Runner:
    """Runs ``agent`` on the attempts ``source`` hands over.

    :param agent: the agent.
    :param store: the store the agent's spans go to (the tracer writes there; so does the runner
        for returned rewards and spans).
    :param source: where attempts come from and statuses go.
    :param tracer: collects the agent's spans (default: none, a :class:`NullTracer`).
    :param hooks: :class:`Hook` objects called around every attempt.
    :param plugin_manager: whose ``agl_on_*`` lifecycle hooks are called (None: none).
    :param max_rollouts: stop (drain) after starting this many attempts.
    """

    def __init__(
        self,
        agent: LitAgent[Any],
        *,
        store: Any,
        source: WorkSource,
        tracer: Tracer | None = None,
        hooks: Sequence[Hook] = (),
        plugin_manager: pluggy.PluginManager | None = None,
        max_rollouts: int | None = None,
    ) -> None:
        self.agent = agent
        self.store = store
        self.source = source
        self.tracer = tracer or NullTracer()
        self.hooks = list(hooks)
        self.plugin_manager = plugin_manager
        self.max_rollouts = max_rollouts
        self.stats = RunnerStats()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def worker_id(self) -> str:
        return self.source.worker_id

    # --- serving -----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None, on_started: Callable[[], None] | None = None) -> RunnerStats:
        """Take and run attempts until ``stop`` is set, the source is done or ``max_rollouts`` is reached.

        :param on_started: called once the source is connected (the server knows the worker and
            may hand it work), e.g. to tell a parent process that this runner is ready.
        """
        self.agent.set_runner(self)
        # Before any agent makes a client: a collected LLM client must not cut a connection of
        # this loop or of another runner's (client_finalizers says how).
        guard_client_finalizers()
        if not self.agent.is_async():
            self._executor = ThreadPoolExecutor(
                max_workers=max(1, self.source.capacity), thread_name_prefix="agl-agent"
            )
        await self.source.start()
        self.tracer.init_worker(self.worker_id)
        if on_started is not None:
            on_started()
        running: set[asyncio.Task[None]] = set()
        try:
            while self.max_rollouts is None or self.stats.started < self.max_rollouts:
                assignment = await _next_unless(self.source, stop)
                if assignment is None:
                    break
                self._start(assignment, running)
            # Draining: attempts already handed over still run, then the source closes.
            await self.source.drain()
            while (assignment := await self.source.next()) is not None:
                self._start(assignment, running)
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            await self.source.close()
        except BaseException:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.shield(self.source.close(abort=True))
            raise
        finally:
            with contextlib.suppress(Exception):
                self.tracer.teardown_worker(self.worker_id)
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
        return self.stats

    def _start(self, assignment: Assignment, running: set[asyncio.Task[None]]) -> None:
        self.stats.started += 1
        task = asyncio.create_task(self.run_attempt(assignment), name=f"agl-attempt-{assignment.attempt_id}")
        running.add(task)
        task.add_done_callback(running.discard)

    # --- one attempt -------------------------------------------------------------------------------

    async def run_attempt(self, assignment: Assignment) -> AttemptStatus:
        """Run one attempt end to end; returns its final status."""
        rollout = assignment.rollout
        rollout_id, attempt_id = assignment.rollout_id, assignment.attempt_id
        await self._hooks("on_rollout_start", agent=self.agent, runner=self, rollout=rollout)
        await notify(
            self.plugin_manager,
            "agl_on_rollout_start",
            rollout=rollout,
            resources=assignment.resources,
            worker_id=self.worker_id,
        )
        # `running` is on its way before the agent starts, but the agent does not wait for the
        # store to record it; the final report waits for it, so the two reach the store in order.
        # An attempt handed over RUNNING already (a Work stream with start_on_assignment) needs none.
        if rollout.attempt is not None and rollout.attempt.status == AttemptStatus.RUNNING:
            started: asyncio.Future[ReportOutcome] = asyncio.get_running_loop().create_future()
            started.set_result(ReportOutcome(rollout_id, attempt_id, AttemptStatus.RUNNING))
        else:
            started = await self.source.report_soon(rollout_id, attempt_id, AttemptStatus.RUNNING)
        status, error, spans = AttemptStatus.SUCCEEDED, None, []
        try:
            spans = await self._traced(assignment)
        except asyncio.CancelledError:
            started.cancel()
            raise
        except Exception as exc:
            status, error = AttemptStatus.FAILED, exc
            logger.warning("attempt %s of rollout %s failed: %s: %s", attempt_id, rollout_id, type(exc).__name__, exc)
            spans = list(self.tracer.get_last_trace())
            failure = exception_span(rollout, exc)
            try:
                await self.store.add_span(failure)
                spans.append(failure)
            except Exception as store_error:
                logger.error("could not store the exception of attempt %s: %s", attempt_id, store_error)
        running = await started
        if running.error is not None:
            logger.info("attempt %s of rollout %s: running not recorded: %s", attempt_id, rollout_id, running.error)
        reward = find_final_reward(spans)
        metadata: dict[str, Any] = {}
        if reward is not None:
            metadata["reward"] = reward
        if error is not None:
            metadata["error_type"] = type(error).__name__
            metadata["error_message"] = str(error)[:2000]
        outcome = await self.source.report(rollout_id, attempt_id, status, metadata or None)
        if outcome.error is not None:
            self.stats.rejected_reports += 1
            logger.warning(
                "attempt %s of rollout %s finished %s, but the store did not take it: %s",
                attempt_id,
                rollout_id,
                status,
                outcome.error,
            )
        if status == AttemptStatus.SUCCEEDED:
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1
        await self._hooks(
            "on_rollout_end",
            agent=self.agent,
            runner=self,
            rollout=rollout,
            spans=spans,
            status=status,
            reward=reward,
            error=error,
        )
        await notify(
            self.plugin_manager,
            "agl_on_rollout_end",
            rollout=rollout,
            status=status,
            spans=spans,
            reward=reward,
            error=error,
            worker_id=self.worker_id,
        )
        return status

    async def _traced(self, assignment: Assignment) -> list[Span]:
        rollout = assignment.rollout
        async with self.tracer.trace_context(
            f"rollout {rollout.rollout_id}",
            store=self.store,
            rollout_id=rollout.rollout_id,
            attempt_id=assignment.attempt_id,
        ):
            await self._hooks("on_trace_start", agent=self.agent, runner=self, tracer=self.tracer, rollout=rollout)
            await notify(
                self.plugin_manager,
                "agl_on_trace_start",
                rollout=rollout,
                tracer=self.tracer,
                worker_id=self.worker_id,
            )
            error: BaseException | None = None
            try:
                result = await self._call_agent(assignment)
            except BaseException as exc:
                error = exc
                raise
            finally:
                await self._hooks("on_trace_end", agent=self.agent, runner=self, tracer=self.tracer, rollout=rollout)
                await notify(
                    self.plugin_manager,
                    "agl_on_trace_end",
                    rollout=rollout,
                    tracer=self.tracer,
                    worker_id=self.worker_id,
                    error=error,
                )
        # The trace context has closed: the tracer's spans are in the store.
        return await deliver(result, rollout=rollout, tracer=self.tracer, store=self.store)

    async def _call_agent(self, assignment: Assignment) -> Any:
        rollout, agent = assignment.rollout, self.agent
        if assignment.resources_error and not assignment.resources:
            logger.warning("rollout %s runs without resources: %s", rollout.rollout_id, assignment.resources_error)
        validation = rollout.mode in (RolloutMode.VAL, RolloutMode.TEST)
        args = (rollout.input, assignment.resources, rollout)
        if agent.is_async():
            method = agent.validation_rollout_async if validation else agent.training_rollout_async
            return await method(*args)
        method = agent.validation_rollout if validation else agent.training_rollout
        # A worker thread keeps the loop free for the other attempts; the copied context carries
        # the tracer's current span into the thread.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, method, *args)

    async def _hooks(self, method: str, **kwargs: Any) -> None:
        for hook in self.hooks:
            try:
                await call_accepting(getattr(hook, method), **kwargs)
            except Exception:
                logger.exception("hook %s.%s failed; the attempt carries on", type(hook).__name__, method)


async def _next_unless(source: WorkSource, stop: asyncio.Event | None) -> Assignment | None:
    """The source's next attempt, or None when ``stop`` is set first."""
    if stop is None:
        return await source.next()
    if stop.is_set():
        return None
    getter = asyncio.ensure_future(source.next())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if getter.done():
        return getter.result()
    getter.cancel()  # an assignment it was about to return stays queued for the drain
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    return None
