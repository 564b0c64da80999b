"""Blob storage behind a small protocol, so local disk and S3 are interchangeable.

Keys are built by the services from ids only (``uploads/<id>/original``), never from client file names.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol

from skyframe.config import Settings


class Storage(Protocol):
    def put(self, key: str, source: BinaryIO) -> int:
        """Store the whole stream under ``key`` atomically; return the byte count."""

    def open_append(self, key: str, offset: int) -> BinaryIO:
        """A writable handle positioned at ``offset``; anything beyond it is discarded first."""

    def read(self, key: str, start: int = 0, end: int | None = None, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Yield bytes ``start..end`` (inclusive end, as in HTTP ranges)."""

    def size(self, key: str) -> int | None:
        """Size in bytes, or None if the key does not exist."""

    def move(self, src: str, dst: str) -> None:
        """Atomically rename: readers see either nothing or the complete object."""

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def local_file(self, key: str) -> AbstractContextManager[Path]:
        """A local path to read the object with tools that need a file (PyAV)."""

    def writer(self, key: str) -> AbstractContextManager[Path]:
        """A local temp path to write; stored under ``key`` only if the block exits cleanly."""

    def free_bytes(self) -> int | None:
        """Free space where new objects go, or None when unknown or unlimited."""


def make_storage(settings: Settings) -> Storage:
    from skyframe.storage.local import LocalStorage

    return LocalStorage(settings.storage_dir)
