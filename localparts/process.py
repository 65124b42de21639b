"""Server processes started in the background: start, watch, stop, remember."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localparts.cache import log_tail
from localparts.errors import LocalPartError


@dataclass
class ServerProcess:
    """A running server: its pid, its log, and what clients need to reach it."""

    name: str
    pid: int
    log_path: str
    details: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        """Whether the process still runs (a zombie counts as gone)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def log(self) -> str:
        """The tail of the server's log."""
        return log_tail(Path(self.log_path))

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout_s`` seconds."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                _reap(self.pid)
                if not self.alive():
                    return
                time.sleep(0.1)

    def save(self, path: Path) -> None:
        """Remember the server in a state file (for ``up`` / ``down`` in separate commands)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> ServerProcess | None:
        """The server remembered in ``path``, if any."""
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    @classmethod
    def stop_saved(cls, path: Path) -> bool:
        """Stop the server remembered in ``path`` and forget it; ``False`` if none was."""
        server = cls.load(path)
        if server is None:
            return False
        server.stop()
        path.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(
    name: str,
    command: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """Start ``command`` in its own session, output to ``log_path``; it outlives this process."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return ServerProcess(name=name, pid=process.pid, log_path=str(log_path))


def wait_until(
    server: ServerProcess, ready: Callable[[], bool], timeout_s: float, waiting_for: str
) -> None:
    """Poll ``ready`` until true; raise with the log tail if the server dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not server.alive():
            raise LocalPartError(f"{server.name} exited while {waiting_for}; log tail:\n{server.log()}")
        time.sleep(0.2)
    server.stop()
    raise LocalPartError(
        f"{server.name} did not get ready within {timeout_s:.0f} s ({waiting_for}); "
        f"log tail:\n{server.log()}"
    )
