"""What the Makefile plans (`make -n`): two pin sets in two environments, the tensorflow-io one made
only by what needs it; a Python found by name, through pyenv when its shim fails, or named with
how to install it; CI runs exactly `make test`."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIND_PYTHON = REPO / "localparts" / "find_python.sh"


MAKE_VARIABLES = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "STREAMTRAIN_CACHE", "CACHE", "VENV", "PYTHON",
                  "PYTEST_ARGS", "TFIO_VENV", "TFIO_PYTHON", "IMAGE_ARGS"}


def planned(*arguments: str) -> list[str]:
    """The commands `make -n` prints for these arguments."""
    # Not what an enclosing make (e.g. `make unit PYTHON=...`) passes down: its flags, and its
    # command-line variables, which it exports.
    env = {key: value for key, value in os.environ.items() if key not in MAKE_VARIABLES}
    dry = subprocess.run(["make", "-n", *arguments], cwd=REPO, capture_output=True, text=True,
                         env=env, check=True)
    return dry.stdout.splitlines()


def test_make_test_runs_the_tensorflow_io_tests_in_their_own_environment(tmp_path: Path) -> None:
    venv, tfio = tmp_path / "venv", tmp_path / "venv-tfio"
    lines = "\n".join(planned(f"VENV={venv}", f"TFIO_VENV={tfio}", "test"))
    assert f"{tfio}/bin/python -m pip install --quiet -e '.[dev-tfio]'" in lines
    assert f"{venv}/bin/python -m pip install --quiet -e '.[dev]'" in lines
    assert f"{venv}/bin/python -m pip check" in lines and f"{tfio}/bin/python -m pip check" in lines
    assert f"{venv}/bin/python -m pytest -n 2 --dist loadfile --durations=25  || status" in lines
    assert f"{tfio}/bin/python -m pytest --tensorflow-io -n 2 --dist loadfile --durations=25  || status" in lines


def test_only_test_security_and_bench_make_the_tensorflow_io_environment(tmp_path: Path) -> None:
    tfio = tmp_path / "venv-tfio"
    for target, needs in (("test", True), ("security", True), ("bench", True), ("demo", False),
                          ("unit", False), ("lint", False), ("quality", False)):
        lines = planned(f"VENV={tmp_path / 'venv'}", f"TFIO_VENV={tfio}", target)
        assert any(f"-m venv {tfio}" in line for line in lines) is needs, target
    bench = "\n".join(planned(f"VENV={tmp_path / 'venv'}", f"TFIO_VENV={tfio}", "bench"))
    assert f"-m bench.input_pipeline --tutorial-python {tfio}/bin/python" in bench


def test_another_python_gets_an_environment_of_its_own(tmp_path: Path) -> None:
    lines = "\n".join(planned(f"CACHE={tmp_path}", "PYTHON=python3.13", "unit"))
    assert f"find_python.sh python3.13) && echo \"$python -m venv {tmp_path}/venv-python3.13\"" in lines
    assert f"{tmp_path}/venv-python3.13/bin/python -m pytest tests/unit" in lines
    default = "\n".join(planned(f"CACHE={tmp_path}", "unit"))
    assert f"{tmp_path}/venv/bin/python -m pytest tests/unit" in default


def test_the_tensorflow_io_image_is_a_target_of_its_own() -> None:
    assert any("-m localparts.image --target workload-tfio" in line
               for line in planned("image-tfio"))
    assert not any("workload-tfio" in line for line in planned("image"))


def test_ci_runs_exactly_make_test() -> None:
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert [line for line in lines if line and not line.startswith(("#", "set ", "cd "))] == [
        "make test"]


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def find_python(name: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(FIND_PYTHON), name], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{path}:/usr/bin:/bin"}, check=False)


def test_a_python_whose_pyenv_shim_fails_is_found_through_pyenv(tmp_path: Path) -> None:
    """pyenv's shim for a version installed but not selected exits 127; pyenv still has it."""
    bin_folder, installed = tmp_path / "bin", tmp_path / "versions" / "3.13.2" / "bin"
    bin_folder.mkdir()
    installed.mkdir(parents=True)
    executable(bin_folder / "python3.13", "#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\n"
                                          "exit 127\n")
    real = executable(installed / "python3.13", "#!/bin/sh\nexit 0\n")
    executable(bin_folder / "pyenv", f"""#!/bin/sh
case "$1" in
  versions) printf '3.11.7\\n3.13.0\\n3.13.2\\n3.130.1\\n' ;;
  which) [ "$PYENV_VERSION" = 3.13.2 ] && echo {real} ;;
esac
""")
    found = find_python("python3.13", bin_folder)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(real)


def test_a_python_that_runs_is_taken_as_it_is(tmp_path: Path) -> None:
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    executable(bin_folder / "python3.12", "#!/bin/sh\necho /opt/python3.12/bin/python3.12\n")
    found = find_python("python3.12", bin_folder)
    assert found.stdout.strip() == "/opt/python3.12/bin/python3.12"


def test_a_missing_python_is_named_with_how_to_install_it(tmp_path: Path) -> None:
    missing = find_python("python3.97", tmp_path)
    assert missing.returncode == 1 and missing.stdout == ""
    assert "error: python3.97 not found: install Python 3.97" in missing.stderr
    assert "apt-get install python3.97 python3.97-venv" in missing.stderr
    assert "pyenv install 3.97" in missing.stderr
