"""What the Makefile plans (`make -n`): two pin sets in two environments, the tensorflow-io one made
only by what needs it; CI runs exactly `make test`."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def planned(*arguments: str) -> list[str]:
    """The commands `make -n` prints for these arguments."""
    dry = subprocess.run(["make", "-n", *arguments], cwd=REPO, capture_output=True, text=True,
                         check=True)
    return dry.stdout.splitlines()


def test_make_test_runs_the_tensorflow_io_tests_in_their_own_environment(tmp_path: Path) -> None:
    venv, tfio = tmp_path / "venv", tmp_path / "venv-tfio"
    lines = "\n".join(planned(f"VENV={venv}", f"TFIO_VENV={tfio}", "test"))
    assert f"{tfio}/bin/python -m pip install --quiet -e '.[dev-tfio]'" in lines
    assert f"{venv}/bin/python -m pip install --quiet -e '.[dev]'" in lines
    assert f"{venv}/bin/python -m pip check" in lines and f"{tfio}/bin/python -m pip check" in lines
    assert f"{venv}/bin/python -m pytest  || status" in lines
    assert f"{tfio}/bin/python -m pytest --tensorflow-io  || status" in lines


def test_only_test_security_and_bench_make_the_tensorflow_io_environment(tmp_path: Path) -> None:
    tfio = tmp_path / "venv-tfio"
    for target, needs in (("test", True), ("security", True), ("bench", True), ("demo", False),
                          ("unit", False), ("lint", False), ("quality", False)):
        lines = planned(f"VENV={tmp_path / 'venv'}", f"TFIO_VENV={tfio}", target)
        assert any(f"-m venv {tfio}" in line for line in lines) is needs, target
    bench = "\n".join(planned(f"VENV={tmp_path / 'venv'}", f"TFIO_VENV={tfio}", "bench"))
    assert f"-m bench.input_pipeline --tutorial-python {tfio}/bin/python" in bench


def test_the_tensorflow_io_image_is_a_target_of_its_own() -> None:
    assert any("-m localparts.image --target workload-tfio" in line
               for line in planned("image-tfio"))
    assert not any("workload-tfio" in line for line in planned("image"))


def test_ci_runs_exactly_make_test() -> None:
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert [line for line in lines if line and not line.startswith(("#", "set ", "cd "))] == [
        "make test"]
