"""What a release carries (issue 13, item 6): ``stagesync --version`` from the package's
metadata, the Apache-2.0 licence pyproject declares, and a changelog."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_the_packages() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version("stagesync") == declared
    done = subprocess.run([str(Path(sys.executable).parent / "stagesync"), "--version"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"stagesync {declared}"


def test_the_licence_is_the_one_pyproject_declares() -> None:
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == \
        "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_changelog_keeps_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in text
    assert "## [Unreleased]" in text
    assert "## [0.1.0]" in text
    assert text.index("## [Unreleased]") < text.index("## [0.1.0]")
