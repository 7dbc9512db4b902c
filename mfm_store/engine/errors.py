"""The engine's errors: the ``RunError`` family, and ``StateFailure`` for state handlers.

A ``RunError`` means the engine refused or could not continue a run (bad plan or manifest,
a context that cannot be stored, an inconsistent event stream). Store failures keep their own
classes (``StorageError``, ``ConcurrencyError``, ``NotFoundError``) and propagate unchanged, so
a stale writer sees ``ConcurrencyError``. A handler's failure is not a ``RunError``: it is
recorded as ``StateFailed`` and the run ends ``Failed`` (or the state is retried).
"""

from __future__ import annotations

from ..errors import ErrorCategory, MfmError

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

# Codes. Stable: tests and other tools read them. Spelled as mfm-machine spells them.
CODE_UNSUPPORTED_EXECUTION_MODE = "unsupported_execution_mode"
CODE_INVALID_PLAN = "invalid_plan"
CODE_SECRETS_DETECTED = "secrets_detected"
CODE_MANIFEST_NOT_CANONICAL = "manifest_not_canonical"
CODE_MANIFEST_OP_ID_MISMATCH = "manifest_op_id_mismatch"
CODE_RUN_CONFIG_MISMATCH = "run_config_mismatch"
CODE_MANIFEST_NOT_FOUND = "manifest_not_found"
CODE_MANIFEST_CORRUPT = "manifest_corrupt"
CODE_MANIFEST_DECODE_FAILED = "manifest_decode_failed"
CODE_MANIFEST_DESERIALIZE_FAILED = "manifest_deserialize_failed"
CODE_RUN_STARTED_OP_ID_MISMATCH = "run_started_op_id_mismatch"
CODE_PLAN_OP_ID_MISMATCH = "plan_op_id_mismatch"
CODE_RECOVERY_STATE_NOT_IN_PLAN = "recovery_state_not_in_plan"
CODE_INVALID_ATTEMPT_ENVELOPES = "invalid_attempt_envelopes"
CODE_RUN_ID_MISMATCH = "run_id_mismatch"
CODE_TERMINAL_WITHOUT_ENTERED = "terminal_without_entered"
CODE_MISSING_RUN_STARTED = "missing_run_started"
CODE_RUN_NOT_FOUND = "run_not_found"
CODE_RUN_ALREADY_EXISTS = "run_already_exists"
CODE_CONTEXT_NOT_CANONICAL = "context_snapshot_not_canonical"
CODE_CONTEXT_NOT_OBJECT = "context_snapshot_not_object"
CODE_DOMAIN_EVENT_INVALID = "domain_event_invalid"
CODE_HANDLER_EXCEPTION = "state_handler_exception"


class RunError(MfmError):
    """The engine refused or could not continue a run; ``info.code`` says why."""

    default_code = "run_error"


class InvalidPlanError(RunError):
    """The plan, the manifest or the recorded history do not fit together (nothing written)."""

    default_code = CODE_INVALID_PLAN


class ContextError(RunError):
    """A context snapshot cannot be written or read (secrets, floats, not an object)."""

    default_code = "context_error"
    default_category = ErrorCategory.CONTEXT


class StateFailure(MfmError):
    """Raised by a state handler to fail its attempt with a chosen code.

    ``StateFailure("upstream timeout", code="upstream_timeout", retryable=True)`` makes the
    engine record ``StateFailed`` (message redacted if it holds a secret, ``details`` dropped)
    and retry the state if the retry policy allows. Any other ``MfmError`` raised by a handler
    is recorded the same way with its own ``info``.
    """

    default_code = "state_failed"
