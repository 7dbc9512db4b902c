import mfm_store

EXPECTED = {
    "SqliteStore", "VerifyReport", "GcReport", "Problem",
    "ArtifactId", "ArtifactKind", "ArtifactStore", "CanonicalJsonError", "ConcurrencyError",
    "ContextKey", "CorruptionError", "DomainEvent", "ErrorCategory", "ErrorCode", "ErrorInfo",
    "Event", "EventEnvelope", "EventStore", "FactBinding", "FactKey", "FactStore",
    "FloatNotAllowedError", "IdValidationError", "IoError", "KernelEvent", "MemoryStore",
    "MfmError", "MissingFactError", "MissingFactKeyError", "NotFoundError", "OpId", "OpPath",
    "RateLimitedError", "RunCompleted", "RunId", "RunStarted", "RunStatus", "RunSummary",
    "SecretsNotAllowedError", "StateCompleted", "StateEntered", "StateError", "StateFailed",
    "StateId", "StorageError", "Store", "TransportError", "artifact_id_for_bytes",
    "artifact_id_for_json", "canonical_json_bytes", "event_from_json", "json_contains_secrets",
    "redact_error_info", "string_contains_secrets",
    # IO layer (SPEC §6)
    "FactIndex", "FactRecorder", "NoopFactRecorder", "PayloadFactRecorder", "StoreFactRecorder",
    "IoCall",
    "IoProvider", "IoResult", "LiveIo", "LiveIoEnv", "LiveIoTransport", "LiveIoTransportFactory",
    "RouterLiveIoTransportFactory", "TransportRegistry", "TransportRegistryError",
    "UnimplementedLiveIoTransportFactory", "ReplayIo",
    # engine (SPEC §7)
    "BuildProvenance", "Context", "ContextCheckpointing", "ContextError", "Duration",
    "EventProfile", "EventRecorder", "ExecutionMode", "ExecutionPlan", "ExponentialBackoff",
    "FixedBackoff", "InvalidPlanError", "IoMode", "OverlayStore", "PlanState", "ReplayOutcome",
    "ReplayReport", "RetryPolicy", "RunConfig", "RunError", "RunManifest", "RunResult",
    "StateFailure", "StateHandler", "replay", "replay_store", "resume", "start",
    # forking a run (issue 19)
    "ForkOrigin", "ForkResult", "fork", "fork_origin",
    # any store from one string (SPEC §11)
    "open_store",
}


def test_public_names_are_pinned() -> None:
    assert set(mfm_store.__all__) >= EXPECTED
    for name in mfm_store.__all__:
        assert hasattr(mfm_store, name), name


def test_error_tree() -> None:
    assert issubclass(mfm_store.ConcurrencyError, mfm_store.StorageError)
    assert issubclass(mfm_store.NotFoundError, mfm_store.StorageError)
    assert issubclass(mfm_store.CorruptionError, mfm_store.StorageError)
    assert issubclass(mfm_store.MissingFactError, mfm_store.IoError)
    assert issubclass(mfm_store.StorageError, mfm_store.MfmError)
    err = mfm_store.MissingFactError("k", retryable=True)
    assert err.key == "k" and err.info.code == "missing_fact" and err.info.retryable
    assert mfm_store.MissingFactKeyError("no key").info.code == "missing_fact_key"
    assert mfm_store.ConcurrencyError("x").info.code == "event_store_concurrency"
