"""The engine's errors: the ``RunError`` family, and ``StateFailure`` for state handlers.

A ``RunError`` means the engine refused or could not continue a run (bad plan or manifest,
a context that cannot be stored, an inconsistent event stream). Store failures keep their own
classes (``StorageError``, ``ConcurrencyError``, ``NotFoundError``) and propagate unchanged, so
a stale writer sees ``ConcurrencyError``. A handler's failure is not a ``RunError``: it is
recorded as ``StateFailed`` and the run ends ``Failed`` (or the state is retried).
"""

from __future__ import annotations

from ..errors import (  # the codes live in the one table; re-exported here
    CODE_CONTEXT_ERROR,
    CODE_CONTEXT_NOT_CANONICAL,
    CODE_CONTEXT_NOT_OBJECT,
    CODE_DOMAIN_EVENT_INVALID,
    CODE_HANDLER_EXCEPTION,
    CODE_INVALID_ATTEMPT_ENVELOPES,
    CODE_INVALID_PLAN,
    CODE_MANIFEST_CORRUPT,
    CODE_MANIFEST_DECODE_FAILED,
    CODE_MANIFEST_DESERIALIZE_FAILED,
    CODE_MANIFEST_NOT_CANONICAL,
    CODE_MANIFEST_NOT_FOUND,
    CODE_MANIFEST_OP_ID_MISMATCH,
    CODE_MISSING_RUN_STARTED,
    CODE_PLAN_OP_ID_MISMATCH,
    CODE_RECOVERY_STATE_NOT_IN_PLAN,
    CODE_RUN_ALREADY_EXISTS,
    CODE_RUN_CONFIG_MISMATCH,
    CODE_RUN_ERROR,
    CODE_RUN_ID_MISMATCH,
    CODE_RUN_NOT_FOUND,
    CODE_RUN_STARTED_OP_ID_MISMATCH,
    CODE_SECRETS_DETECTED,
    CODE_STATE_FAILED,
    CODE_TERMINAL_WITHOUT_ENTERED,
    CODE_UNSUPPORTED_EXECUTION_MODE,
    ErrorCategory,
    MfmError,
)

__all__ = [
    "CODE_CONTEXT_NOT_CANONICAL",
    "CODE_CONTEXT_NOT_OBJECT",
    "CODE_DOMAIN_EVENT_INVALID",
    "CODE_HANDLER_EXCEPTION",
    "CODE_INVALID_ATTEMPT_ENVELOPES",
    "CODE_INVALID_PLAN",
    "CODE_MANIFEST_CORRUPT",
    "CODE_MANIFEST_DECODE_FAILED",
    "CODE_MANIFEST_DESERIALIZE_FAILED",
    "CODE_MANIFEST_NOT_CANONICAL",
    "CODE_MANIFEST_NOT_FOUND",
    "CODE_MANIFEST_OP_ID_MISMATCH",
    "CODE_MISSING_RUN_STARTED",
    "CODE_PLAN_OP_ID_MISMATCH",
    "CODE_RECOVERY_STATE_NOT_IN_PLAN",
    "CODE_RUN_ALREADY_EXISTS",
    "CODE_RUN_CONFIG_MISMATCH",
    "CODE_RUN_ID_MISMATCH",
    "CODE_RUN_NOT_FOUND",
    "CODE_RUN_STARTED_OP_ID_MISMATCH",
    "CODE_SECRETS_DETECTED",
    "CODE_TERMINAL_WITHOUT_ENTERED",
    "CODE_UNSUPPORTED_EXECUTION_MODE",
    "ContextError",
    "InvalidPlanError",
    "RunError",
    "StateFailure",
]


class RunError(MfmError):
    """The engine refused or could not continue a run; ``info.code`` says why."""

    default_code = CODE_RUN_ERROR


class InvalidPlanError(RunError):
    """The plan, the manifest or the recorded history do not fit together (nothing written)."""

    default_code = CODE_INVALID_PLAN


class ContextError(RunError):
    """A context snapshot cannot be written or read (secrets, floats, not an object)."""

    default_code = CODE_CONTEXT_ERROR
    default_category = ErrorCategory.CONTEXT


class StateFailure(MfmError):
    """Raised by a state handler to fail its attempt with a chosen code.

    ``StateFailure("upstream timeout", code="upstream_timeout", retryable=True)`` makes the
    engine record ``StateFailed`` (message redacted if it holds a secret, ``details`` dropped)
    and retry the state if the retry policy allows. Any other ``MfmError`` raised by a handler
    is recorded the same way with its own ``info``.
    """

    default_code = CODE_STATE_FAILED
