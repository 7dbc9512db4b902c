import re
import uuid

import pytest

from conftest import load_vector
from mfm_store import ArtifactId, IdValidationError, OpId, OpPath, RunId, StateId

V = load_vector("ids.json")


@pytest.mark.parametrize("text", V["op_id_valid"])
def test_op_id_valid(text: str) -> None:
    assert OpId(text) == text


@pytest.mark.parametrize("text", V["op_id_invalid"])
def test_op_id_invalid(text: str) -> None:
    with pytest.raises(IdValidationError, match=f"^invalid op_id: {re.escape(text)}$"):
        OpId(text)


@pytest.mark.parametrize("text", V["state_id_valid"])
def test_state_id_valid(text: str) -> None:
    assert StateId(text) == text


@pytest.mark.parametrize("text", V["state_id_invalid"])
def test_state_id_invalid(text: str) -> None:
    with pytest.raises(IdValidationError, match=r"^invalid state_id: "):
        StateId(text)


@pytest.mark.parametrize("text", V["op_path_valid"])
def test_op_path_valid(text: str) -> None:
    assert OpPath(text) == text


@pytest.mark.parametrize("text", V["op_path_invalid"])
def test_op_path_invalid(text: str) -> None:
    with pytest.raises(IdValidationError, match=r"^invalid op_path: "):
        OpPath(text)


def test_id_validation_error_is_value_error() -> None:
    assert issubclass(IdValidationError, ValueError)


def test_run_id_roundtrip_and_forms() -> None:
    rid = RunId.new()
    assert rid.value.version == 4
    assert RunId.parse(str(rid)) == rid
    text = "3F2B8C1E-6A4D-4F7E-9B1A-2C5D8E7F9A01"
    parsed = RunId.parse(text)
    assert str(parsed) == text.lower()
    assert RunId.parse("{" + text + "}") == parsed  # the spellings the crate accepts
    assert RunId.parse(text.replace("-", "")) == parsed
    assert parsed == RunId(uuid.UUID(text))
    assert hash(parsed) == hash(RunId.parse(text.lower()))


@pytest.mark.parametrize("bad", ["", "not-a-uuid", "3f2b8c1e-6a4d-4f7e-9b1a-2c5d8e7f9a0"])
def test_run_id_invalid(bad: str) -> None:
    with pytest.raises(IdValidationError, match=f"^invalid run_id: {re.escape(bad)}$"):
        RunId.parse(bad)


def test_artifact_id() -> None:
    good = "a" * 64
    assert ArtifactId(good) == good
    for bad in ["A" * 64, "a" * 63, "a" * 65, "sha256:" + "a" * 57, 5]:
        with pytest.raises(IdValidationError):
            ArtifactId(bad)
