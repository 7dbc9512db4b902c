"""Running ``mfm-store`` as a user types it (``python -m mfm_store ...``), and small real
databases to run it on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, RunId, RunStarted
from mfm_store.sqlite import SqliteStore


def env(**extra: str) -> dict[str, str]:
    """The test process's environment without ``$MFM_STORE_DB``, plus ``extra``."""
    values = {k: v for k, v in os.environ.items() if k != "MFM_STORE_DB"}
    values.update(extra)
    return values


def cli(*args: str | Path, cwd: Path | None = None, stdin: bytes | None = None,
        env: dict[str, str] | None = None, timeout: float = 120,
        stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "mfm_store", *map(str, args)], cwd=cwd,
                          input=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout,
                          env=_env_or_default(env))


def _env_or_default(given: dict[str, str] | None) -> dict[str, str]:
    return env() if given is None else given


def cli_all(*commands: list[str | Path], cwd: Path | None = None,
            env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess[bytes]]:
    """Several independent commands, run at the same time (each as its own process)."""
    procs = [(c, subprocess.Popen([sys.executable, "-m", "mfm_store", *map(str, c)], cwd=cwd,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=_env_or_default(env)))
             for c in commands]
    results = []
    for args, proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(args, proc.returncode, stdout, stderr))
    return results


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode("utf-8")


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode("utf-8")


def assert_one_line_error(result: subprocess.CompletedProcess[bytes], code: str) -> None:
    text = err(result)
    assert "Traceback" not in text
    assert text.startswith("mfm-store: error: ") and text.count("\n") == 1, text
    assert text.rstrip().endswith(f"[{code}]"), text


def read(path: Path, fn: str, *args: object) -> Any:
    """One call on the file opened read-only, from the test process."""
    async def go() -> Any:
        async with SqliteStore.open(path, read_only=True) as store:
            return await getattr(store, fn)(*args)
    return asyncio.run(go())


def listing(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` (hidden ones too) with its bytes; FIFOs as a marker."""
    found: dict[str, bytes] = {}
    for p in sorted(folder.iterdir()):
        found[p.name] = p.read_bytes() if p.is_file() else b"<not a file>"
    return found


def make_store(path: Path, *, events: int = 5, blobs: int = 0,
               blob_size: int = 0) -> RunId:
    """A database with one run of ``events`` events (a RunStarted, then domain events, one
    fact) and ``blobs`` extra artifacts of ``blob_size`` bytes each."""
    async def go() -> RunId:
        run = RunId.new()
        async with SqliteStore.open(path, durability="normal") as store:
            manifest = await store.put(ArtifactKind.MANIFEST, b'{"op":"payroll"}')
            context = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, b'{"n":0}')
            await store.append(run, 0, [EventEnvelope(run, 1, None,
                                                      RunStarted("payroll", manifest, context))])
            head = 1
            while head < events - 1:
                batch = [EventEnvelope(run, head + i + 1, None,
                                       DomainEvent("tick", {"i": head + i, "pad": "x" * 40}))
                         for i in range(min(1000, events - 1 - head))]
                head = await store.append(run, head, batch)
            payload = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"price":12}')
            await store.bind_fact(run, "market:quote", payload)
            for i in range(blobs):
                seed = i.to_bytes(4, "big")
                await store.put(ArtifactKind.OUTPUT, (seed * (blob_size // 4 + 1))[:blob_size])
        return run
    return asyncio.run(go())
