"""Start and resume sequential runs (SPEC §7), with mfm-machine's event order.

A run's stream reads::

    RunStarted(op_id, manifest_id, initial_snapshot_id)
    StateEntered(s, attempt, base_snapshot_id)
      [fact_recorded ...] [domain events ...]
    StateCompleted(s, snapshot_id) | StateFailed(s, redacted error, None)
    ... (retries: StateEntered(s, attempt + 1, same base))
    RunCompleted(Completed | Failed, final_snapshot_id)

Every check that can refuse a run (execution mode, plan, manifest, secrets or floats in the
manifest or the initial context) happens before the first write. Secrets are never written:
handler errors are redacted, domain events and fact payloads holding secrets are refused.

Failure model. A handler that raises an ``MfmError`` (e.g. ``StateFailure``) or any other
``Exception`` fails its attempt: ``StateFailed`` is recorded and the state is retried while the
error is retryable and ``max_attempts`` allows. A handler's context that cannot be stored
(secrets, floats) fails the attempt the same way, without retry. Store failures
(``StorageError``, including ``ConcurrencyError`` for a stale writer) and ``BaseException``
subclasses that are not ``Exception`` (cancellation, a crash) abort the run with nothing more
written: the stream ends with an open attempt, and :func:`resume` retries that attempt from
its base snapshot, with its facts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

from .._rules import CheckedBytes
from ..canonical import redact_error_info, string_contains_secrets
from ..errors import (
    CODE_CONCURRENCY,
    CODE_ERROR_CODE_REDACTED,
    ConcurrencyError,
    ErrorCategory,
    ErrorInfo,
    RunNotFoundError,
    StorageError,
)
from ..events import (
    RunCompleted,
    RunStarted,
    RunStatus,
    StateCompleted,
    StateEntered,
    StateError,
    StateFailed,
)
from ..facts import FactIndex
from ..ids import ArtifactId, RunId, StateId
from ..stores import ArtifactKind, Store
from ._io import TransportsArg, build_io, resolve_transports
from .context import Context, read_snapshot, snapshot_bytes, write_snapshot
from .errors import (
    CODE_HANDLER_EXCEPTION,
    CODE_MANIFEST_OP_ID_MISMATCH,
    CODE_PLAN_OP_ID_MISMATCH,
    CODE_RECOVERY_STATE_NOT_IN_PLAN,
    CODE_RUN_ALREADY_EXISTS,
    CODE_RUN_CONFIG_MISMATCH,
    CODE_RUN_STARTED_OP_ID_MISMATCH,
    ContextError,
    InvalidPlanError,
)
from .history import RunHistory, analyze_history
from .manifest import IoMode, RunConfig, RunManifest, load_manifest, manifest_bytes
from .plan import ExecutionPlan, PlanState
from .recorder import EventRecorder
from .writer import RunWriter

__all__ = ["RunResult", "SleepFn", "resume", "start"]

SleepFn = Callable[[float], Awaitable[None]]


@attrs.frozen(kw_only=True)
class RunResult:
    """How a run ended. ``error`` is the failing state's (redacted) error for a failed run."""

    run_id: RunId
    status: RunStatus
    final_snapshot_id: ArtifactId | None
    final_context: dict[str, Any]
    error: StateError | None = None


@attrs.frozen
class _Outcome:
    snapshot_id: ArtifactId | None
    error: StateError | None = None
    retry_after: float | None = None  # seconds the failing error asked to wait (Retry-After)


def _failure_info(exc: BaseException) -> ErrorInfo:
    info = getattr(exc, "info", None)
    if isinstance(info, ErrorInfo):
        return info
    return ErrorInfo(CODE_HANDLER_EXCEPTION, ErrorCategory.UNKNOWN, False,
                     f"{type(exc).__name__}: {exc}")


def state_error(state_id: StateId, info: ErrorInfo) -> StateError:
    """The error as it may be written: details dropped, secret-bearing message (or code)
    replaced."""
    info = redact_error_info(info)
    if string_contains_secrets(info.code):
        info = attrs.evolve(info, code=CODE_ERROR_CODE_REDACTED)
    return StateError(state_id, info)


class Execution:
    """One process driving one run: the writer, the shared fact index and the IO wiring.

    Package-internal; :func:`start`, :func:`resume` and the offline replay build one.
    """

    def __init__(self, store: Store, run_id: RunId, order: Sequence[PlanState],
                 config: RunConfig, *, writer: RunWriter, facts: FactIndex,
                 transports: TransportsArg = None, io_mode: IoMode | None = None,
                 sleep: SleepFn = asyncio.sleep) -> None:
        self.store = store
        self.run_id = run_id
        self.order = list(order)
        self.config = config
        self.writer = writer
        self.facts = facts
        self.io_mode = config.io_mode if io_mode is None else io_mode
        self.transports = resolve_transports(transports)
        self.sleep = sleep
        self.missing_facts: list[str] = []

    async def execute_attempt(self, state: PlanState, attempt: int,
                              base: ArtifactId) -> _Outcome:
        """Run one attempt of ``state`` from snapshot ``base`` and record its outcome."""
        sid = state.state_id
        await self.writer.append([StateEntered(sid, attempt, base)])
        if self.config.skip_tags and any(t in self.config.skip_tags for t in state.tags):
            await self.writer.append([StateCompleted(sid, base)])
            return _Outcome(base)
        ctx = Context(await read_snapshot(self.store, base))
        io = build_io(self.store, self.run_id, sid, attempt, facts=self.facts,
                      io_mode=self.io_mode, writer=self.writer, transports=self.transports,
                      replay_missing_fact_retryable=self.config.replay_missing_fact_retryable,
                      missing_facts=self.missing_facts)
        recorder = EventRecorder(self.writer, self.config.event_profile)
        info: ErrorInfo | None = None
        retry_after: float | None = None
        try:
            await state.handler(ctx, io, recorder)
        except StorageError:
            raise
        except Exception as exc:  # a handler's failure, recorded as StateFailed
            info = _failure_info(exc)
            wait = getattr(exc, "retry_after", None)
            if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0:
                retry_after = float(wait)
        if info is None:
            try:
                snapshot = await write_snapshot(self.store, ctx)
            except ContextError as exc:
                info = exc.info
            else:
                await self.writer.append([StateCompleted(sid, snapshot)])
                return _Outcome(snapshot)
        error = state_error(sid, info)
        await self.writer.append([StateFailed(sid, error, None)])
        return _Outcome(None, error, retry_after)

    async def run_states(self, current: ArtifactId, completed: set[StateId],
                         start_at: tuple[StateId, int, ArtifactId] | None = None) -> RunResult:
        """Run every state not in ``completed``, in order, then record ``RunCompleted``.

        ``start_at = (state, attempt, base)`` resumes at that state with that attempt number
        and base snapshot (recovery); the states after it start at attempt 0.
        """
        policy = self.config.retry_policy
        reached = start_at is None
        for state in self.order:
            if state.state_id in completed:
                continue
            if start_at is not None and not reached:
                if state.state_id != start_at[0]:
                    continue
                reached = True
                attempt, base = start_at[1], start_at[2]
            else:
                attempt, base = 0, current
            while True:
                outcome = await self.execute_attempt(state, attempt, base)
                if outcome.snapshot_id is not None:
                    current = outcome.snapshot_id
                    break
                assert outcome.error is not None
                if outcome.error.info.retryable and attempt + 1 < policy.max_attempts:
                    delay = policy.backoff.delay_for(attempt).total_seconds()
                    if outcome.retry_after is not None:
                        delay = max(delay, outcome.retry_after)
                    if delay:
                        await self.sleep(delay)
                    attempt += 1
                    continue
                return await self.finish(RunStatus.FAILED, current, outcome.error)
        return await self.finish(RunStatus.COMPLETED, current)

    async def finish(self, status: RunStatus, final: ArtifactId,
                     error: StateError | None = None) -> RunResult:
        await self.writer.append([RunCompleted(status, final)])
        return RunResult(run_id=self.run_id, status=status, final_snapshot_id=final,
                         final_context=await read_snapshot(self.store, final), error=error)


def _check_manifest(plan: ExecutionPlan, manifest: RunManifest) -> list[PlanState]:
    manifest.run_config.execution_mode.check_supported()
    order = plan.ordered()
    if manifest.op_id != plan.op_id:
        raise InvalidPlanError("manifest.op_id did not match plan.op_id",
                               code=CODE_MANIFEST_OP_ID_MISMATCH)
    return order


async def start(store: Store, plan: ExecutionPlan,
                initial_context: Mapping[str, Any] | None = None, *,
                config: RunConfig | None = None, manifest: RunManifest | None = None,
                transports: TransportsArg = None, run_id: RunId | None = None,
                sleep: SleepFn = asyncio.sleep) -> RunResult:
    """Start a new run of ``plan`` and drive it to its end.

    The manifest defaults to ``RunManifest(op_id=plan.op_id, run_config=config)``; if both
    ``manifest`` and ``config`` are given they must agree (``run_config_mismatch``).
    ``transports`` is one ``LiveIoTransportFactory`` or several (routed by namespace group);
    without it, every live call fails with ``io_unimplemented``. ``run_id`` defaults to a new
    UUID v4; a run id that already has events gives ``ConcurrencyError``
    (``run_already_exists``). ``sleep`` waits out retry backoff, or longer if the failing
    error has a positive ``retry_after`` (seconds; e.g. ``HttpRateLimitedError`` from a
    429's ``Retry-After``): the wait is ``max(backoff, retry_after)``.

    Raises before writing anything: ``InvalidPlanError`` (``unsupported_execution_mode``,
    ``invalid_plan``, ``manifest_op_id_mismatch``, ``run_config_mismatch``, ``secrets_detected``
    or ``manifest_not_canonical`` for the manifest), ``ContextError`` (``secrets_detected``,
    ``context_snapshot_not_canonical``) for the initial context. Store errors propagate and
    leave the run resumable. Returns the :class:`RunResult` once ``RunCompleted`` is durable.
    """
    if manifest is None:
        manifest = RunManifest(op_id=plan.op_id, run_config=config or RunConfig())
    elif config is not None and config != manifest.run_config:
        raise InvalidPlanError("run_config did not match manifest.run_config",
                               code=CODE_RUN_CONFIG_MISMATCH)
    order = _check_manifest(plan, manifest)
    manifest_data = manifest_bytes(manifest)
    initial_data = snapshot_bytes(initial_context or {})
    resolved = resolve_transports(transports)
    run_id = RunId.new() if run_id is None else run_id

    # Both were made canonical and secret-scanned above: the store need not scan them again.
    manifest_id = await store.put(ArtifactKind.MANIFEST, CheckedBytes(manifest_data))
    initial_id = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, CheckedBytes(initial_data))
    writer = RunWriter(store, run_id, 0)
    try:
        await writer.append([RunStarted(plan.op_id, manifest_id, initial_id)])
    except ConcurrencyError as exc:
        if exc.info.code != CODE_CONCURRENCY:
            raise
        raise ConcurrencyError(f"run {run_id} already exists",
                               code=CODE_RUN_ALREADY_EXISTS) from exc
    execution = Execution(store, run_id, order, manifest.run_config, writer=writer,
                          facts=FactIndex(), transports=resolved, sleep=sleep)
    return await execution.run_states(initial_id, set())


async def load_history(store: Store, run_id: RunId) -> RunHistory:
    """The run's checked history; ``NotFoundError`` (``run_not_found``)."""
    stream = await store.read_range(run_id)
    if not stream:
        raise RunNotFoundError(f"run event stream was not found: {run_id}")
    return analyze_history(run_id, stream)


async def finished_result(store: Store, history: RunHistory) -> RunResult:
    """The result of a run whose stream holds ``RunCompleted``."""
    done = history.run_completed
    assert done is not None
    final = done.final_snapshot_id
    error = None
    if done.status is RunStatus.FAILED:
        failed = [a for a in history.attempts if a.error is not None]
        error = failed[-1].error if failed else None
    context = await read_snapshot(store, final) if final is not None else {}
    return RunResult(run_id=history.run_id, status=done.status, final_snapshot_id=final,
                     final_context=context, error=error)


def check_resumable(plan: ExecutionPlan, manifest: RunManifest,
                    history: RunHistory) -> list[PlanState]:
    """Execution order of ``plan`` for this run, or ``InvalidPlanError`` if they disagree."""
    # As in mfm-machine: the plan's op id is checked first.
    if plan.op_id != manifest.op_id:
        raise InvalidPlanError("resolved plan.op_id did not match manifest.op_id",
                               code=CODE_PLAN_OP_ID_MISMATCH)
    order = _check_manifest(plan, manifest)
    if history.run_started.op_id != manifest.op_id:
        raise InvalidPlanError("RunStarted.op_id did not match manifest.op_id",
                               code=CODE_RUN_STARTED_OP_ID_MISMATCH)
    known = {s.state_id for s in order}
    recorded = {a.state_id for a in history.attempts}
    if history.orphan is not None:
        recorded.add(history.orphan.state_id)
    unknown = sorted(recorded - known)
    if unknown:
        raise InvalidPlanError(f"recorded state {unknown[0]} is not in the plan",
                               code=CODE_RECOVERY_STATE_NOT_IN_PLAN)
    return order


async def resume(store: Store, run_id: RunId, plan: ExecutionPlan, *,
                 transports: TransportsArg = None,
                 sleep: SleepFn = asyncio.sleep) -> RunResult:
    """Continue a run after a crash (or a stop), re-using its recorded facts.

    A finished run (its stream holds ``RunCompleted``) resumes as a no-op: nothing is written
    and its result is returned. Otherwise the manifest is re-read and its id checked, and:
    an orphan attempt (``StateEntered`` with no outcome) is retried with the next attempt
    number from its base snapshot; a state whose last attempt failed is retried if the error
    was retryable and attempts remain, else the run is recorded as ``Failed``; else the next
    state not completed runs. Facts bound by earlier attempts are served, not re-fetched
    (time and random facts are per attempt, so they are drawn anew).

    Raises ``NotFoundError`` (``run_not_found``), ``InvalidPlanError`` (a stream that is not
    well formed, a manifest whose bytes no longer hash to its id, a plan that does not match),
    and ``ConcurrencyError`` if another writer appends to the run meanwhile.
    """
    history = await load_history(store, run_id)
    if history.run_completed is not None:
        return await finished_result(store, history)
    manifest = await load_manifest(store, history.run_started.manifest_id)
    order = check_resumable(plan, manifest, history)
    config = manifest.run_config
    execution = Execution(store, run_id, order, config,
                          writer=RunWriter(store, run_id, history.head),
                          facts=await FactIndex.from_store(store, run_id),
                          transports=transports, sleep=sleep)
    checkpoint = history.checkpoint
    completed = set(history.completed_states)
    orphan = history.orphan
    if orphan is not None:
        return await execution.run_states(
            checkpoint, completed, (orphan.state_id, orphan.attempt + 1,
                                    orphan.base_snapshot_id))
    pending = [s for s in order if s.state_id not in completed]
    if not pending:
        return await execution.finish(RunStatus.COMPLETED, checkpoint)
    nxt = pending[0]
    last = history.last_attempt(nxt.state_id)
    if last is None:
        return await execution.run_states(checkpoint, completed)
    if last.error is not None and (not last.error.info.retryable
                                   or last.attempt + 1 >= config.retry_policy.max_attempts):
        return await execution.finish(RunStatus.FAILED, checkpoint, last.error)
    return await execution.run_states(checkpoint, completed,
                                      (nxt.state_id, last.attempt + 1, last.base_snapshot_id))
