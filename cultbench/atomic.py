"""Atomic file writes: results, artifacts and checkpoints are never left half-written."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from cultbench.errors import CultbenchError


def _new_file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def write_bytes_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync and
    ``os.replace``: a reader (or a crash, Ctrl-C, SIGTERM) never sees half a file."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise CultbenchError(f"{path}: folder {str(folder)!r} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CultbenchError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        os.chmod(tmp, _new_file_mode(path))  # mkstemp makes it 0600; give it a normal file's mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CultbenchError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


def write_text_atomic(path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_folder_atomic(folder, files: dict[str, bytes]) -> Path:
    """Write ``files`` (name -> bytes) into ``folder``. A new folder appears whole (built under a
    temporary name, then renamed); in an existing folder each file is replaced atomically, in
    the order given (so a record written last never points to a file not yet written)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CultbenchError(f"{folder} exists and is not a folder")
    if folder.exists():
        for name, data in files.items():
            write_bytes_atomic(folder / name, data)
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    except OSError as exc:
        raise CultbenchError(f"{folder}: cannot write ({exc.strerror or exc})") from None
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())  # the files' bytes reach the disk before the rename publishes them
        os.chmod(tmp, 0o755)
        _fsync_folder(tmp)
        os.replace(tmp, folder)
        _fsync_folder(folder.parent)
    except OSError as exc:  # e.g. a full disk: nothing of the new folder is left behind
        raise CultbenchError(f"{folder}: cannot write ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
