"""Detached child processes with pid files, so `vigil stack down` stops exactly what `vigil stack up` started."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A component cannot start or is unhealthy; the message says what to fix."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ManagedProcess:
    """One component process: its pid file records pid and start time so a recycled pid is never signalled."""

    name: str
    run_dir: Path
    log_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
            )
        self.pid_file.write_text(json.dumps({"pid": proc.pid, "start_time": _start_time(proc.pid), "argv": argv}))
        return proc.pid

    def pid(self) -> int | None:
        """The recorded pid if that process is still the one we started, else None (and the stale file is removed)."""
        try:
            record = json.loads(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        pid = record["pid"]
        if _start_time(pid) != record["start_time"] or _is_zombie(pid):
            _reap(pid)
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def stop(self, timeout_s: float = 15.0) -> bool:
        """SIGTERM the process group, SIGKILL after `timeout_s`. Returns whether something was running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.1)
        if self.pid() is not None:
            _signal_group(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def rss_mb(self) -> float | None:
        """Resident memory of the process and its children, in MiB."""
        pid = self.pid()
        return None if pid is None else tree_rss_mb(pid)

    def cpu_s(self) -> float | None:
        """CPU seconds the process and its children have used so far."""
        pid = self.pid()
        return None if pid is None else tree_cpu_s(pid)


def tree_rss_mb(pid: int) -> float:
    total = 0
    for child in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process and its live children have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for child in [pid, *_descendants(pid)]:
        fields = _stat_fields(child)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _descendants(pid: int) -> list[int]:
    children = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            children.extend(int(c) for c in text)
    except FileNotFoundError:
        return []
    return children + [d for c in children for d in _descendants(c)]


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None


def _start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is None or fields[0] == "Z"


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)
