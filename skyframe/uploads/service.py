"""Resumable uploads: the business rules, independent of HTTP.

The bytes of an unfinished upload live under ``uploads/<id>/original.part``; the stored size of that
object *is* ``receivedBytes``, so a server killed mid-chunk resumes from exactly what reached the disk.
``complete`` checks, probes, and only then renames the file into place: a reader never sees a partial
original, and the original is never modified afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from io import BytesIO
from pathlib import PurePosixPath

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from skyframe.auth.limits import Limits
from skyframe.config import Settings
from skyframe.db.models import Job, Upload, UploadStatus, new_id, utcnow
from skyframe.db.session import Database
from skyframe.errors import (
    BadRange,
    Conflict,
    InsufficientStorage,
    Invalid,
    NotFound,
    TooLarge,
    UnsupportedType,
)
from skyframe.formatting import human_size
from skyframe.media.probe import probe, thumbnail_jpeg
from skyframe.storage import Storage

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm"}
VIDEO_CONTENT_TYPES = {
    "video/mp4",
    "video/quicktime",
    "video/x-matroska",
    "video/matroska",
    "video/x-msvideo",
    "video/avi",
    "video/msvideo",
    "video/webm",
    "video/x-m4v",
}
GENERIC_CONTENT_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def original_key(upload_id: str) -> str:
    return f"uploads/{upload_id}/original"


def partial_key(upload_id: str) -> str:
    return f"uploads/{upload_id}/original.part"


def thumbnail_key(upload_id: str) -> str:
    return f"uploads/{upload_id}/thumbnail.jpg"


def clean_filename(name: str) -> str:
    """The name as the user gave it, minus what no display can show. Never used to build a path."""
    name = _CONTROL_CHARS.sub("", unicodedata.normalize("NFC", name)).strip()
    return name[:255] or "video"


@dataclass(frozen=True)
class WritePlan:
    """Where a PUT body goes: skip its first ``skip`` bytes (already stored), write the rest at ``offset``."""

    upload_id: str
    key: str
    offset: int
    skip: int
    length: int  # bytes the body should carry


class UploadService:
    def __init__(self, settings: Settings, db: Database, storage: Storage) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage

    # -- queries -----------------------------------------------------------------------------------

    def get(self, owner: str | None, upload_id: str) -> Upload:
        """``owner=None`` means any owner (admin); a foreign upload is reported as unknown."""
        with self.db.session() as session:
            upload = session.get(Upload, upload_id)
        if upload is None or (owner is not None and upload.owner_id != owner):
            raise NotFound(f"No upload with id {upload_id!r}.", code="upload_not_found")
        return upload

    def received_bytes(self, upload: Upload) -> int:
        if upload.status == UploadStatus.ready:
            return upload.size
        if upload.status == UploadStatus.failed:
            return 0
        return self.storage.size(partial_key(upload.id)) or 0

    def list(self, owner: str | None, limit: int, offset: int) -> tuple[list[Upload], int]:
        with self.db.session() as session:
            query = select(Upload)
            count = select(func.count()).select_from(Upload)
            if owner is not None:
                query = query.where(Upload.owner_id == owner)
                count = count.where(Upload.owner_id == owner)
            rows = session.scalars(
                query.order_by(Upload.created_at.desc(), Upload.id.desc()).limit(limit).offset(offset)
            ).all()
            total = session.scalar(count) or 0
        return list(rows), total

    # -- commands ----------------------------------------------------------------------------------

    def init(
        self,
        owner: str,
        filename: str,
        size: int,
        content_type: str | None = None,
        sha256: str | None = None,
        *,
        limits: Limits | None = None,
    ) -> Upload:
        """Register an upload. ``limits`` (the caller's, None = unlimited) caps the owner's stored bytes."""
        name = clean_filename(filename)
        self._check_type(name, content_type)
        if size <= 0:
            raise Invalid("The file is empty (0 bytes): there is nothing to upload.", code="empty_file")
        if size > self.settings.max_upload_size:
            raise TooLarge(
                f"The file is {human_size(size)}; the largest upload allowed is "
                f"{human_size(self.settings.max_upload_size)}.",
                code="file_too_large",
            )
        free = self.storage.free_bytes()
        if free is not None and free - size < self.settings.min_free_disk:
            raise InsufficientStorage(
                f"Not enough free disk space for {human_size(size)} (free: {human_size(free)}).",
                code="insufficient_storage",
            )
        if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
            raise Invalid("sha256 must be 64 hexadecimal characters.", code="invalid_sha256")
        upload = Upload(
            id=new_id("upl"),
            owner_id=owner,
            filename=name,
            content_type=(content_type or None),
            size=size,
            sha256=sha256.lower() if sha256 else None,
            status=UploadStatus.pending,
        )
        with self.db.session() as session:
            session.add(upload)
            if limits is not None and limits.max_storage_bytes is not None:
                # Insert, then count in the same transaction: concurrent inits cannot both slip under.
                session.flush()
                self._check_storage_quota(session, owner, size, limits.max_storage_bytes)
        return upload

    def plan_write(self, owner: str, upload_id: str, content_range: str | None) -> WritePlan:
        upload = self.get(owner, upload_id)
        if upload.status != UploadStatus.pending:
            raise Conflict(
                f"Upload {upload_id} is {upload.status}; no more bytes are accepted.",
                code="upload_not_pending",
            )
        received = self.received_bytes(upload)
        if content_range is None:
            start, end = 0, upload.size - 1
        else:
            match = _CONTENT_RANGE.match(content_range.strip())
            if not match:
                raise BadRange(
                    "Content-Range must look like 'bytes START-END/TOTAL'.", code="bad_content_range"
                )
            start, end = int(match[1]), int(match[2])
            total = match[3]
            if end < start:
                raise BadRange("Content-Range end is before its start.", code="bad_content_range")
            if total != "*" and int(total) != upload.size:
                raise BadRange(
                    f"Content-Range total {total} does not match the declared size {upload.size}.",
                    code="size_mismatch",
                    receivedBytes=received,
                )
            if end >= upload.size:
                raise BadRange(
                    f"The chunk ends at byte {end}, past the end of the {upload.size}-byte file.",
                    code="range_past_end",
                    receivedBytes=received,
                )
        if start > received:
            raise Conflict(
                f"The chunk starts at byte {start} but only {received} bytes are stored; "
                f"resume from byte {received}.",
                code="range_gap",
                receivedBytes=received,
            )
        skip = min(received, end + 1) - start
        return WritePlan(
            upload_id=upload_id,
            key=partial_key(upload_id),
            offset=start + skip,
            skip=skip,
            length=end - start + 1,
        )

    def complete(self, owner: str, upload_id: str) -> Upload:
        upload = self.get(owner, upload_id)
        if upload.status == UploadStatus.ready:
            return upload
        if upload.status == UploadStatus.failed:
            raise Conflict(f"Upload {upload_id} failed: {upload.error}", code="upload_failed")
        received = self.received_bytes(upload)
        if received != upload.size:
            raise Conflict(
                f"Only {received} of {upload.size} bytes have arrived; send the rest before completing.",
                code="upload_incomplete",
                receivedBytes=received,
            )
        part = partial_key(upload_id)
        digest = self._sha256(part)
        if upload.sha256 and digest != upload.sha256:
            # The bytes are wrong; keep nothing of them so a fresh upload starts clean.
            self.storage.delete(part)
            raise Invalid(
                f"The file's SHA-256 is {digest}, not the declared {upload.sha256}. "
                "The received bytes were discarded; upload the file again.",
                code="checksum_mismatch",
                receivedBytes=0,
            )
        try:
            with self.storage.local_file(part) as path:
                media = probe(path)
                thumb = thumbnail_jpeg(path)
        except Invalid as exc:
            self.storage.delete(part)
            self._update(upload_id, status=UploadStatus.failed, error=exc.message, sha256=digest)
            raise
        self.storage.put(thumbnail_key(upload_id), BytesIO(thumb))
        self.storage.move(part, original_key(upload_id))
        return self._update(
            upload_id,
            status=UploadStatus.ready,
            media=media,
            sha256=digest,
            completed_at=utcnow(),
            error=None,
        )

    def delete(self, owner: str | None, upload_id: str) -> list[str]:
        """Remove the upload, its files and its jobs; returns the deleted job ids (their files go too)."""
        upload = self.get(owner, upload_id)
        with self.db.session() as session:
            job_ids = list(session.scalars(select(Job.id).where(Job.upload_id == upload.id)))
            for job in session.scalars(select(Job).where(Job.upload_id == upload.id)):
                session.delete(job)
            session.delete(session.get(Upload, upload.id))
        self.storage.delete_prefix(f"uploads/{upload.id}")
        for job_id in job_ids:
            self.storage.delete_prefix(f"jobs/{job_id}")
        return job_ids

    # -- helpers -----------------------------------------------------------------------------------

    def _check_storage_quota(self, session: Session, owner: str, size: int, quota: int) -> None:
        used = session.scalar(
            select(func.coalesce(func.sum(Upload.size), 0)).where(
                Upload.owner_id == owner, Upload.status != UploadStatus.failed
            )
        )
        if (used or 0) > quota:
            before = (used or 0) - size
            raise TooLarge(
                f"This {human_size(size)} upload would exceed your storage quota: {human_size(before)} of "
                f"{human_size(quota)} used. Delete clips you no longer need, or ask the administrator.",
                code="storage_quota_exceeded",
                usedBytes=before,
                quotaBytes=quota,
            )

    def _check_type(self, name: str, content_type: str | None) -> None:
        ext = PurePosixPath(name.replace("\\", "/")).suffix.lower()
        ctype = (content_type or "").split(";")[0].strip().lower()
        allowed = ", ".join(sorted(e.lstrip(".") for e in VIDEO_EXTENSIONS))
        if ctype and ctype not in GENERIC_CONTENT_TYPES and not ctype.startswith("video/"):
            raise UnsupportedType(
                f"'{ctype}' is not a video type. Supported videos: {allowed}.", code="unsupported_type"
            )
        if ext in VIDEO_EXTENSIONS or (not ext and ctype in VIDEO_CONTENT_TYPES):
            return
        raise UnsupportedType(
            f"{name!r} does not look like a supported video. Supported: {allowed}.", code="unsupported_type"
        )

    def _sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.storage.read(key, chunk=4 << 20):
            digest.update(chunk)
        return digest.hexdigest()

    def _update(self, upload_id: str, **values: object) -> Upload:
        with self.db.session() as session:
            upload = session.get(Upload, upload_id)
            if upload is None:
                raise NotFound(f"No upload with id {upload_id!r}.", code="upload_not_found")
            for name, value in values.items():
                setattr(upload, name, value)
        return upload
