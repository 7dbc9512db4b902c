"""One error tree and one table of codes (issue 13 §4).

Every exception class the package defines is an ``MfmError`` (so ``except MfmError`` catches
whatever the library raises, as the README says); the ``CODE_*`` constants of
``mfm_store.errors`` are the one table of codes: each value written once, unique, and listed in
the README's "Errors" table; no other module spells a code as a bare string. Private exception
classes (a leading underscore) are control flow inside one module and never reach a caller.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import mfm_store
from mfm_store import errors
from mfm_store.cli._common import CliError
from mfm_store.engine.errors import ContextError, InvalidPlanError, RunError, StateFailure

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mfm_store"

# Exception classes not (yet) MfmError, with who fixes them.
KNOWN_NOT_MFM: dict[str, str] = {}
# (module path, code) spelled as a bare string outside errors.py, with who fixes them.
KNOWN_BARE_CODES: dict[tuple[str, str], str] = {
}
# Strings equal to a code that are not codes.
NOT_CODES = {("mfm_store/engine/replay.py", "missing_fact")}  # ReplayOutcome.MISSING_FACT


def _modules() -> list[ModuleType]:
    found = [mfm_store]
    for info in pkgutil.walk_packages(mfm_store.__path__, "mfm_store."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        found.append(importlib.import_module(info.name))
    return found


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in _modules():
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__ and not name.startswith("_")):
                found[f"{module.__name__}.{name}"] = obj
    return found


def _codes() -> dict[str, str]:
    return {name: value for name, value in vars(errors).items()
            if name.startswith("CODE_") and isinstance(value, str)}


def test_every_exception_class_is_an_mfm_error() -> None:
    classes = _exception_classes()
    assert "mfm_store.errors.IdValidationError" in classes
    assert "mfm_store.cli._common.CliError" in classes
    not_mfm = {name for name, cls in classes.items() if not issubclass(cls, errors.MfmError)}
    assert not_mfm <= set(KNOWN_NOT_MFM), sorted(not_mfm - set(KNOWN_NOT_MFM))


def test_the_tree_in_the_docstring_names_every_class() -> None:
    doc = errors.__doc__ or ""
    for name, cls in _exception_classes().items():
        if issubclass(cls, errors.MfmError):
            assert re.search(rf"\b{cls.__name__}\b", doc), name


def test_value_errors_stay_value_errors_with_their_codes_and_messages() -> None:
    exc: errors.MfmError = errors.IdValidationError("run_id", "nope")
    assert isinstance(exc, ValueError)
    assert (str(exc), exc.info.code, exc.info.category, exc.info.message) == (
        "invalid run_id: nope", "invalid_id", errors.ErrorCategory.PARSING_INPUT,
        "invalid run_id: nope")
    for cls, code in ((errors.CanonicalJsonError, "canonical_json_invalid"),
                      (errors.FloatNotAllowedError, "float_not_allowed"),
                      (errors.SecretsNotAllowedError, "secrets_detected")):
        exc = cls("why")
        assert isinstance(exc, ValueError) and isinstance(exc, errors.CanonicalJsonError)
        assert (str(exc), exc.info.code, exc.info.message, exc.info.retryable) == (
            "why", code, "why", False)
    with pytest.raises(ValueError, match="invalid op_id"):
        mfm_store.OpId("Not An Op")


def test_default_codes() -> None:
    cases = {
        errors.NotFoundError: "artifact_not_found",
        errors.RunNotFoundError: "run_not_found",
        RunError: "run_error",
        InvalidPlanError: "invalid_plan",
        ContextError: "context_error",
        StateFailure: "state_failed",
    }
    for cls, code in cases.items():
        assert cls("m").info.code == code, cls
    assert issubclass(errors.RunNotFoundError, errors.NotFoundError)
    cli = CliError("m", 2, errors.CODE_USAGE)
    assert (cli.code, cli.info.code, cli.exit_code, str(cli)) == ("usage", "usage", 2, "m")


def test_every_code_is_written_once() -> None:
    codes = _codes()
    by_value: dict[str, list[str]] = {}
    for name, value in codes.items():
        by_value.setdefault(value, []).append(name)
    assert {v: n for v, n in by_value.items() if len(n) > 1} == {}
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", v) for v in codes.values())


def test_every_code_is_in_the_readme_error_table() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n### Errors\n")
    section = text[start:text.index("\n#", start + 1)]
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE))
    assert documented == set(_codes().values())


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and node.body and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)):
            ids.add(id(node.body[0].value))
    return ids


def _bare_codes() -> set[tuple[str, str]]:
    values = set(_codes().values())
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "errors.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstring_ids(tree)
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value in values and id(node) not in docs):
                found.add((rel, node.value))
    return found


# Parsed at collection: CPython 3.11's ast.parse can fail (SystemError, "recursion depth
# mismatch") when called after another test hit a RecursionError in the same thread.
BARE_CODES = _bare_codes()


def test_no_module_spells_a_code_as_a_bare_string() -> None:
    unexpected = BARE_CODES - set(KNOWN_BARE_CODES) - NOT_CODES
    assert not unexpected, sorted(unexpected)
