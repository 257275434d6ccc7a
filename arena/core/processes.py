"""Processes on this host: whether one is alive, and which hold files under a folder."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def processes_under(folder: str) -> list[int]:
    """The processes (other than this one) that hold a file open, or their working folder,
    under ``folder``; none where there is no ``/proc`` (Linux only)."""
    root = os.path.realpath(folder)
    if not os.path.isdir("/proc"):
        return []
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and int(entry) != os.getpid() and _holds_files_under(int(entry), root)
    ]


def _holds_files_under(pid: int, folder: str) -> bool:
    prefix = folder + os.sep
    try:
        links = [os.readlink(f"/proc/{pid}/cwd")]
        fds = f"/proc/{pid}/fd"
        links += [os.readlink(f"{fds}/{fd}") for fd in os.listdir(fds)]
    except OSError:  # gone meanwhile, or not ours to read
        return False
    return any(link.startswith(prefix) for link in links)
