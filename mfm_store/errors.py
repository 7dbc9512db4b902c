"""The one exception tree of mfm_store, and the error payload shared with mfm-machine.

Classes are what callers catch; ``info.code`` (a stable snake_case string) is what machines and
tests read. Every exception the library raises is an :class:`MfmError` and carries an
:class:`ErrorInfo`; those that mean "this value is invalid" are also ``ValueError``. Each class
below with its default code (a raise may pass a more precise code from the table)::

    MfmError                                 mfm_error
    ├── StorageError                         storage_error
    │   ├── ConcurrencyError                 event_store_concurrency, fact_binding_conflict
    │   ├── NotFoundError                    artifact_not_found
    │   │   └── RunNotFoundError             run_not_found
    │   ├── CorruptionError                  storage_corruption
    │   ├── InvalidEventError (ValueError)   invalid_envelopes         mfm_store.events
    │   ├── TransferError                    export_malformed, import_diverged  mfm_store.transfer
    │   └── SyncDivergedError                sync_diverged             mfm_store.sync
    ├── IoError                              io_error
    │   ├── MissingFactKeyError              missing_fact_key
    │   ├── MissingFactError                 missing_fact
    │   ├── TransportError                   io_transport
    │   ├── RateLimitedError                 io_rate_limited
    │   │   └── HttpRateLimitedError         io_rate_limited           mfm_store.http
    │   └── FactRequestMismatchError         fact_request_mismatch     mfm_store.http
    ├── IdValidationError (ValueError)       invalid_id
    ├── CanonicalJsonError (ValueError)      canonical_json_invalid
    │   ├── FloatNotAllowedError             float_not_allowed
    │   └── SecretsNotAllowedError           secrets_detected
    ├── TransportRegistryError (ValueError)  transport_registry_invalid
    ├── RunError                             run_error                 mfm_store.engine.errors
    │   ├── InvalidPlanError                 invalid_plan
    │   └── ContextError                     context_error
    ├── StateFailure                         state_failed              mfm_store.engine.errors
    └── CliError                             usage                     mfm_store.cli

The ``CODE_*`` constants below are the one table of codes: each code's text is written here
once, and every other module imports it from here (some re-export it under its old name).
Stable: changing one is a breaking change. The README's "Errors" table lists them all.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

# Codes. Stable: changing one is a breaking change.
CODE_MFM_ERROR = "mfm_error"
CODE_CONCURRENCY = "event_store_concurrency"
CODE_FACT_BINDING_CONFLICT = "fact_binding_conflict"
CODE_INVALID_ENVELOPES = "invalid_envelopes"
CODE_NOT_FOUND = "artifact_not_found"
CODE_CORRUPTION = "storage_corruption"
CODE_STORAGE = "storage_error"
CODE_READ_ONLY = "store_read_only"
CODE_STORE_CLOSED = "store_closed"
CODE_NOT_A_DATABASE = "not_an_mfm_store"
CODE_SCHEMA_TOO_NEW = "schema_too_new"
CODE_BUSY = "store_busy"
# PostgreSQL (mfm_store.postgres): server unreachable / a write's commit outcome unknown.
CODE_STORE_UNAVAILABLE = "store_unavailable"
CODE_COMMIT_UNKNOWN = "commit_unknown"
CODE_DESTINATION_EXISTS = "destination_exists"
# Push / pull (mfm_store.sync): a run whose destination history differs from the source's.
CODE_SYNC_DIVERGED = "sync_diverged"
CODE_INVALID_ID = "invalid_id"
CODE_MISSING_FACT_KEY = "missing_fact_key"
CODE_MISSING_FACT = "missing_fact"
CODE_IO = "io_error"
CODE_TRANSPORT = "io_transport"
CODE_RATE_LIMITED = "io_rate_limited"
CODE_SECRETS_DETECTED = "secrets_detected"
CODE_FACT_PAYLOAD_GET_FAILED = "fact_payload_get_failed"
CODE_FACT_PAYLOAD_DECODE_FAILED = "fact_payload_decode_failed"
CODE_FACT_PAYLOAD_NOT_CANONICAL = "fact_payload_not_canonical"
CODE_FACT_PAYLOAD_PUT_FAILED = "fact_payload_put_failed"
CODE_FACT_PAYLOAD_INVALID = "fact_payload_invalid"
CODE_FACT_BINDING_APPEND_FAILED = "fact_binding_append_failed"
CODE_TIME_UNAVAILABLE = "time_unavailable"
CODE_RANDOM_UNAVAILABLE = "random_unavailable"
CODE_IO_UNIMPLEMENTED = "io_unimplemented"
CODE_IO_UNKNOWN_NAMESPACE = "io_unknown_namespace"
CODE_TRANSPORT_REGISTRY = "transport_registry_invalid"
CODE_INVALID_ARGUMENT = "invalid_argument"
CODE_INVALID_FACT_KEY = "invalid_fact_key"
CODE_DISK_FULL = "disk_full"
CODE_STORE_NEEDS_RECOVERY = "store_needs_recovery"
# HTTP transport (mfm_store.http).
CODE_FACT_REQUEST_MISMATCH = "fact_request_mismatch"
CODE_HTTP_REQUEST_INVALID = "http_request_invalid"
CODE_HTTP_BODY_TOO_LARGE = "http_body_too_large"
CODE_HTTP_SERVER_ERROR = "http_server_error"
CODE_HTTP_CLIENT_ERROR = "http_client_error"
CODE_HTTP_ANSWER_INVALID = "http_answer_invalid"

# Not found, usage, engine, CLI and transfer codes (their modules re-export some of them).
CODE_RUN_NOT_FOUND = "run_not_found"
CODE_STORE_NOT_FOUND = "store_not_found"
CODE_USAGE = "usage"
CODE_CANONICAL_JSON_INVALID = "canonical_json_invalid"
CODE_FLOAT_NOT_ALLOWED = "float_not_allowed"
CODE_RUN_ERROR = "run_error"
CODE_CONTEXT_ERROR = "context_error"
CODE_STATE_FAILED = "state_failed"
CODE_UNSUPPORTED_EXECUTION_MODE = "unsupported_execution_mode"
CODE_INVALID_PLAN = "invalid_plan"
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
CODE_RUN_ALREADY_EXISTS = "run_already_exists"
CODE_CONTEXT_NOT_CANONICAL = "context_snapshot_not_canonical"
CODE_CONTEXT_NOT_OBJECT = "context_snapshot_not_object"
CODE_DOMAIN_EVENT_INVALID = "domain_event_invalid"
CODE_HANDLER_EXCEPTION = "state_handler_exception"
CODE_ERROR_CODE_REDACTED = "error_code_redacted"
CODE_FORK_STATE_NOT_REACHED = "fork_state_not_reached"
CODE_FORK_STATE_NOT_NEXT = "fork_state_not_next"
CODE_EXPORT_MALFORMED = "export_malformed"
CODE_IMPORT_DIVERGED = "import_diverged"
CODE_ARCHIVE_MISMATCH = "archive_mismatch"
CODE_INTERNAL = "internal_error"
CODE_OS_ERROR = "os_error"
CODE_INVALID_VALUE = "invalid_value"
CODE_DEMO_FAILED = "demo_failed"
CODE_NOT_A_DEMO_FILE = "not_a_demo_file"
CODE_DESTINATION_IS_DATABASE = "destination_is_database"
CODE_INVALID_DESTINATION = "invalid_destination"
CODE_EXPORT_NOT_FOUND = "export_not_found"
CODE_UI_EXTRA_MISSING = "ui_extra_missing"
CODE_PORT_UNAVAILABLE = "port_unavailable"
CODE_DEMO_PATH_UNUSABLE = "demo_path_unusable"


class ErrorCategory(enum.Enum):
    """Error categories, spelled as in the Rust crate's serde output."""

    PARSING_INPUT = "ParsingInput"
    ON_CHAIN = "OnChain"
    OFF_CHAIN = "OffChain"
    RPC = "Rpc"
    STORAGE = "Storage"
    CONTEXT = "Context"
    UNKNOWN = "Unknown"


@attrs.frozen
class ErrorInfo:
    """Structured error payload: ``code`` is stable, ``message`` is for people."""

    code: str
    category: ErrorCategory
    retryable: bool
    message: str
    details: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "category": self.category.value,
            "retryable": self.retryable,
            "message": self.message,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, obj: Any) -> ErrorInfo:
        try:
            code, message, retryable = obj["code"], obj["message"], obj["retryable"]
            category = ErrorCategory(obj["category"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid ErrorInfo: {obj!r}") from exc
        if not (isinstance(code, str) and isinstance(message, str) and isinstance(retryable, bool)):
            raise ValueError(f"invalid ErrorInfo: {obj!r}")
        return cls(code, category, retryable, message, obj.get("details"))


class MfmError(Exception):
    """Base of every mfm_store error; ``info`` holds the stable code."""

    default_code = CODE_MFM_ERROR
    default_category = ErrorCategory.UNKNOWN

    def __init__(self, message: str, *, code: str | None = None,
                 info: ErrorInfo | None = None, retryable: bool = False,
                 details: Any = None) -> None:
        if info is None:
            info = ErrorInfo(code or self.default_code, self.default_category, retryable,
                             message, details)
        super().__init__(info.message)
        self.info = info

    @property
    def code(self) -> str:
        return self.info.code


class StorageError(MfmError):
    """A store could not do what was asked (the catch-all storage case)."""

    default_code = CODE_STORAGE
    default_category = ErrorCategory.STORAGE


class ConcurrencyError(StorageError):
    """Optimistic concurrency lost: the head moved, or a fact is bound to another payload."""

    default_code = CODE_CONCURRENCY


class NotFoundError(StorageError):
    """An artifact (by default) or another named thing the store does not hold."""

    default_code = CODE_NOT_FOUND


class RunNotFoundError(NotFoundError):
    """The store holds no run with that id (code ``run_not_found``)."""

    default_code = CODE_RUN_NOT_FOUND


class CorruptionError(StorageError):
    """Stored bytes fail their checksum or content address."""

    default_code = CODE_CORRUPTION


class IoError(MfmError):
    """The IO layer failed (the catch-all IO case)."""

    default_code = CODE_IO


class MissingFactKeyError(IoError):
    default_code = CODE_MISSING_FACT_KEY
    default_category = ErrorCategory.PARSING_INPUT


class MissingFactError(IoError):
    """Replay found no recorded fact for ``key``; the message matches mfm-machine's."""

    default_code = CODE_MISSING_FACT
    default_category = ErrorCategory.RPC

    def __init__(self, key: str, *, retryable: bool = False) -> None:
        super().__init__("missing recorded fact", retryable=retryable)
        self.key = key


class TransportError(IoError):
    default_code = CODE_TRANSPORT
    default_category = ErrorCategory.OFF_CHAIN


class RateLimitedError(IoError):
    default_code = CODE_RATE_LIMITED
    default_category = ErrorCategory.OFF_CHAIN


class IdValidationError(MfmError, ValueError):
    """An identifier failed validation; the message reads ``invalid {kind}: {value}``."""

    default_code = CODE_INVALID_ID
    default_category = ErrorCategory.PARSING_INPUT

    def __init__(self, kind: str, value: object) -> None:
        super().__init__(f"invalid {kind}: {value}")
        self.kind = kind
        self.value = value


class CanonicalJsonError(MfmError, ValueError):
    """A value cannot be hashed as canonical JSON."""

    default_code = CODE_CANONICAL_JSON_INVALID
    default_category = ErrorCategory.PARSING_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)


class FloatNotAllowedError(CanonicalJsonError):
    default_code = CODE_FLOAT_NOT_ALLOWED


class SecretsNotAllowedError(CanonicalJsonError):
    default_code = CODE_SECRETS_DETECTED


class TransportRegistryError(MfmError, ValueError):
    """A transport factory could not be registered (empty or duplicate namespace group)."""

    default_code = CODE_TRANSPORT_REGISTRY

    def __init__(self, message: str) -> None:
        super().__init__(message)
