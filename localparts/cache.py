"""Where downloads and builds are kept, outside the repository, and how tools run.

Everything large (Kafka jars, Kubernetes binaries) lives under one cache
directory so a second run is fast; nothing in it is required: each part
rebuilds what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from localparts.errors import LocalPartError

TAIL_LINES = 40
"""How many lines of a failed command's output or a server's log to show."""


def cache_root() -> Path:
    """The cache directory: ``$STREAMTRAIN_CACHE`` or ``~/.cache/streamtrain``."""
    root = Path(os.environ.get("STREAMTRAIN_CACHE", Path.home() / ".cache" / "streamtrain"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last lines of a log file, or a note that it is missing."""
    if not path.exists():
        return f"(no log at {path})"
    return tail(path.read_text(errors="replace"), lines)


def require_tool(name: str, how_to_install: str) -> str:
    """The path of an executable, or an error that says how to install it."""
    found = shutil.which(name)
    if found is None:
        raise LocalPartError(f"`{name}` is not on PATH; install it: {how_to_install}")
    return found


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str,
) -> str:
    """Run a command to completion; on failure raise with the command and its output tail."""
    merged_env = {**os.environ, **(env or {})}
    completed = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=merged_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        shown = " ".join(str(part) for part in command)
        raise LocalPartError(
            f"{what} failed (exit {completed.returncode}): {shown}\n{tail(completed.stdout)}"
        )
    return completed.stdout
