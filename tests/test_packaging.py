"""The wheel ships every package and the schema files (pyproject lists packages explicitly)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "mfm_store").rglob("__init__.py")}
    assert found <= listed, f"missing from pyproject packages: {sorted(found - listed)}"
    assert config["package-dir"]["mfm_store._schema"] == "schema"
    assert sorted(p.name for p in (ROOT / "schema").glob("*.sql"))[0] == "0001_initial.sql"
