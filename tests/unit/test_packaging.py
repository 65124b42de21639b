"""The wheel the images install holds every module of the sources, subpackages included.

An editable install (what the tests use) imports straight from the checkout, so
a package left out of the wheel shows only in a built image; this builds the
wheel and compares.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

SOURCES = {"workload": "workload", "localparts": "localparts",
           "operator/streamtrain_operator": "streamtrain_operator"}
"""Source folder -> the package it installs as."""


def test_the_wheel_holds_every_module(repo_root: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, as the image build sees it: no stale build/ folder
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root / name, source / name)
    for folder in ("workload", "localparts", "operator"):
        shutil.copytree(repo_root / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("streamtrain-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"{package}/{path.relative_to(repo_root / folder).as_posix()}"
                for folder, package in SOURCES.items()
                for path in (repo_root / folder).rglob("*.py") if "__pycache__" not in path.parts}
    assert expected, "no sources found"
    assert sorted(expected - packed) == []
