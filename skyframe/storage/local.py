"""Local-disk storage: one file per key under a root directory."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

_COPY_CHUNK = 4 << 20


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Map a key to a path, refusing anything that would escape the root."""
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def _temp_for(self, path: Path) -> Path:
        # Keep the suffix: tools such as FFmpeg pick the container from it.
        return path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")

    def put(self, key: str, source: BinaryIO) -> int:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temp_for(path)
        try:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, _COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path.stat().st_size

    def open_append(self, key: str, offset: int) -> BinaryIO:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "r+b" if path.exists() else "w+b")  # noqa: SIM115 - the caller closes it
        handle.truncate(offset)
        handle.seek(offset)
        return handle

    def read(self, key: str, start: int = 0, end: int | None = None, chunk: int = 1 << 20) -> Iterator[bytes]:
        with open(self.path(key), "rb") as handle:
            handle.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                data = handle.read(chunk if remaining is None else min(chunk, remaining))
                if not data:
                    return
                if remaining is not None:
                    remaining -= len(data)
                yield data

    def size(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            return None

    def move(self, src: str, dst: str) -> None:
        target = self.path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(src), target)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self.path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    @contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.exists():
            raise FileNotFoundError(key)
        yield path

    @contextmanager
    def writer(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temp_for(path)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            with suppress(FileNotFoundError):
                tmp.unlink()

    def free_bytes(self) -> int | None:
        return shutil.disk_usage(self.root).free
