"""The package's version is Cargo.toml's, in its PEP 440 form, wherever it is read."""

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

import django_rustcache
from django_rustcache import _core, _pep440

CARGO_TOML = Path(__file__).resolve().parent.parent / "Cargo.toml"


def test_version_is_cargo_tomls_in_pep440_form():
    with open(CARGO_TOML, "rb") as f:
        cargo = tomllib.load(f)["package"]["version"]
    assert _core.__version__ == cargo
    assert django_rustcache.__version__ == _pep440(cargo)
    # maturin writes the same form into the metadata (dynamic = ["version"] in pyproject.toml).
    assert importlib.metadata.version("django-rustcache") == django_rustcache.__version__


@pytest.mark.parametrize(
    ("cargo", "pep440"),
    [
        ("0.1.0", "0.1.0"),
        ("1.2.0-alpha.3", "1.2.0a3"),
        ("1.2.0-beta.1", "1.2.0b1"),
        ("1.2.0-rc.2", "1.2.0rc2"),
        ("1.2.0-rc2", "1.2.0rc2"),
        ("1.2.0+build-7", "1.2.0+build.7"),
    ],
)
def test_pep440_form_of_cargo_versions(cargo, pep440):
    assert _pep440(cargo) == pep440


@pytest.mark.parametrize("cargo", ["1.2", "1.2.0-dev.1", "1.2.0-alpha"])
def test_cargo_version_without_a_pep440_form_is_refused(cargo):
    with pytest.raises(ValueError, match="no PEP 440 form"):
        _pep440(cargo)
