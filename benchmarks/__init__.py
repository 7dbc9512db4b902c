"""Benchmark harness for mfm_store (SPEC §9): ``python -m benchmarks [--quick] [--only ...]``.

Every scenario runs our store and its reference (raw ``sqlite3`` at the same durability, and the
``eventsourcing`` and DBOS libraries where installed) side by side in interleaved rounds, and
reports median ratios with their spread against the targets of SPEC §9.
"""
