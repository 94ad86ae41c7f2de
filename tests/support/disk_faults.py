"""A small disk that a test can fill and free: the full-disk faults of the collectors and logs.

Where the test may mount a filesystem (root in a container, as on this machine and in CI), it
is a real tmpfs of a few MiB: writes fail with ENOSPC from the kernel, short writes included.
Elsewhere the same interface injects ENOSPC at the OS-call boundary instead: `os.write` writes
part of what it is given and then fails, and `os.fsync` fails, for files under the directory
(buffered writes reach the disk at fsync, which is where a full disk shows on many filesystems).
`SmallDisk.real` says which one a test got.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _can_mount() -> bool:
    probe = tempfile.mkdtemp(prefix="tw-mount-probe-")
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
            capture_output=True, timeout=10,
        )
        if done.returncode != 0:
            return False
        subprocess.run(["umount", probe], capture_output=True, timeout=10, check=True)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(probe)


_MOUNTABLE: bool | None = None


def mountable() -> bool:
    """Whether this process can mount a tmpfs (checked once; TRADEWATCH_TEST_INJECT_ENOSPC=1
    forces the injected fault, to try that path where mounting works)."""
    global _MOUNTABLE
    if _MOUNTABLE is None:
        _MOUNTABLE = os.environ.get("TRADEWATCH_TEST_INJECT_ENOSPC") != "1" and _can_mount()
    return _MOUNTABLE


class SmallDisk:
    """A directory on a small filesystem; `fill()` leaves no free byte, `free()` undoes it."""

    def __init__(self, path: Path, real: bool, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        self.real = real
        self._monkeypatch = monkeypatch
        self._ballast = path / ".ballast"
        self._full = False
        if not real:
            self._inject()

    @property
    def full(self) -> bool:
        return self._full

    def fill(self) -> None:
        """Use up every free byte (or switch the injected ENOSPC on)."""
        self._full = True
        if not self.real:
            return
        chunk = b"\0" * (64 * 1024)
        with open(self._ballast, "ab", buffering=0) as handle:
            for size in (len(chunk), 1):  # then the last partial block
                with contextlib.suppress(OSError):
                    while handle.write(chunk[:size]):
                        pass

    def free(self) -> None:
        """Give the space back."""
        self._full = False
        if self.real:
            with contextlib.suppress(FileNotFoundError):
                self._ballast.unlink()

    def _under(self, fd: int) -> bool:
        """A regular file on this disk (a directory's fsync writes no data: it never fails
        for lack of space)."""
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            return False
        return regular and target.startswith(str(self.path))

    def _inject(self) -> None:
        real_write, real_fsync = os.write, os.fsync

        def write(fd: int, data: bytes) -> int:
            if self._full and self._under(fd):
                part = bytes(data)[: len(data) // 2]
                if part:
                    return real_write(fd, part)  # a short write, as a nearly full disk gives
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        def fsync(fd: int) -> None:
            if self._full and self._under(fd):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fsync(fd)

        self._monkeypatch.setattr(os, "write", write)
        self._monkeypatch.setattr(os, "fsync", fsync)


@contextlib.contextmanager
def small_disk(
    monkeypatch: pytest.MonkeyPatch, size: str = "4m", parent: Path | None = None
) -> Iterator[SmallDisk]:
    """A SmallDisk of `size` (a tmpfs size, e.g. "4m"), unmounted afterwards."""
    path = Path(tempfile.mkdtemp(prefix="tw-small-disk-", dir=parent))
    real = mountable()
    if real:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            check=True, capture_output=True, timeout=10,
        )
    disk = SmallDisk(path, real, monkeypatch)
    try:
        yield disk
    finally:
        if real:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
        with contextlib.suppress(OSError):
            if real:
                os.rmdir(path)
            else:
                import shutil

                shutil.rmtree(path)
