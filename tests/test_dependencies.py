"""The lower bounds in pyproject.toml are tested: `make test` runs a second step in a
virtualenv with each of them pinned (``OLDEST_PINS`` in the Makefile)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _lower_bounds() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    bounds = {}
    for line in [*project["dependencies"], *extras["cli"], *extras["redis"], *extras["sealed"]]:
        requirement = Requirement(line)
        (lower,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        bounds[requirement.name] = Version(lower)
    return bounds


def _oldest_pins() -> dict[str, Version]:
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    found = re.search(r"^OLDEST_PINS := (.*)$", makefile, re.MULTILINE)
    assert found is not None, "the Makefile pins no oldest versions"
    pins = {}
    for pin in found.group(1).split():
        name, _, version = pin.partition("==")
        pins[name] = Version(version)
    return pins


def test_the_oldest_step_pins_every_lower_bound_of_the_runtime_dependencies() -> None:
    assert _oldest_pins() == _lower_bounds()


def test_the_oldest_step_is_part_of_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: test-oldest$", makefile, re.MULTILINE)
