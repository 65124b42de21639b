"""The digest `make image` labels each image with, and skips a build when it matches: it moves
with every file the build reads, and with nothing else."""

from __future__ import annotations

from pathlib import Path

from localparts import image


def _tree(root: Path) -> Path:
    """A repository with one file in each part of the build context, and one outside it."""
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        (root / name).write_text(name)
    for package in ("workload", "operator", "localparts"):
        (root / package).mkdir()
        (root / package / "__init__.py").write_text(f"# {package}\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("")
    return root


def test_it_should_move_with_every_file_the_build_reads(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = image.context_digest("workload", "base-id", root)
    assert image.context_digest("workload", "base-id", root) == before
    for changed in ("Dockerfile", "pyproject.toml", "workload/__init__.py"):
        original = (root / changed).read_text()
        (root / changed).write_text(original + "# changed\n")
        assert image.context_digest("workload", "base-id", root) != before, changed
        (root / changed).write_text(original)
    (root / "operator" / "new.py").write_text("")
    assert image.context_digest("workload", "base-id", root) != before, "a new module"
    (root / "operator" / "new.py").unlink()
    (root / "localparts" / "__init__.py").chmod(0o755)
    assert image.context_digest("workload", "base-id", root) != before, "a mode"


def test_it_should_move_with_the_target_and_the_base(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    digest = image.context_digest("workload", "base-id", root)
    assert image.context_digest("operator", "base-id", root) != digest
    assert image.context_digest("workload", "other-base-id", root) != digest


def test_it_should_ignore_what_the_build_does_not_read(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = image.context_digest("workload", "base-id", root)
    (root / "tests" / "test_x.py").write_text("changed")
    (root / "workload" / "__pycache__").mkdir()
    (root / "workload" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0")
    (root / "operator" / ".mypy_cache").mkdir()
    (root / "operator" / ".mypy_cache" / "x.json").write_text("{}")
    (root / "localparts" / "stray.pyc").write_bytes(b"\0")
    assert image.context_digest("workload", "base-id", root) == before
