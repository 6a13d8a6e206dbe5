"""The media-processing job: probe with PyAV, thumbnail, checksum, then ready or failed."""

from __future__ import annotations

import io
import logging
import uuid
from datetime import timedelta

from flask import current_app
from rq import Retry
from rq.job import JobStatus
from sqlalchemy import select

from streampay import jobs
from streampay.content import service
from streampay.content.media import MediaRejected, probe, sha256_of
from streampay.content.models import Content, ContentStatus
from streampay.content.schemas import ContentSchema
from streampay.content.storage import get_storage
from streampay.dbtypes import utcnow
from streampay.events import outbox
from streampay.extensions import db

log = logging.getLogger(__name__)


def enqueue_processing(content: Content) -> None:
    """Call after the commit that wrote the row; one queued job per item at a time."""
    jobs.enqueue(
        process_media,
        str(content.id),
        job_id=f"process-media-{content.id}",
        job_timeout=current_app.config["MEDIA_JOB_TIMEOUT"],
        retry=Retry(max=3, interval=[10, 60, 300]),
    )


# A job in one of these is still on its way; any other (finished, failed, stopped, or none at all) is not.
_PENDING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def requeue_stuck_media() -> int:
    """Queue again the items `processing` for longer than MEDIA_JOB_TIMEOUT whose job is nowhere: lost with a Redis
    restart, or its worker killed. Periodic (the cron table); returns how many it queued."""
    try:
        cutoff = utcnow() - timedelta(seconds=current_app.config["MEDIA_JOB_TIMEOUT"])
        stuck = db.session.scalars(
            select(Content)
            .where(
                Content.status == ContentStatus.PROCESSING,
                Content.status_changed_at < cutoff,
                Content.deleted_at.is_(None),
            )
            .limit(500)
        ).all()
        queued = 0
        for content in stuck:
            job = jobs.queue().fetch_job(f"process-media-{content.id}")
            if job is None or job.get_status(refresh=False) not in _PENDING:
                log.warning("media stuck in processing: queued again", extra={"content_id": str(content.id)})
                enqueue_processing(content)
                queued += 1
        return queued
    finally:
        db.session.remove()


def process_media(content_id: str) -> str:
    """Idempotent: an item that is not `processing` is left as it is."""
    try:
        content = db.session.get(Content, uuid.UUID(content_id))
        if content is None or content.status is not ContentStatus.PROCESSING:
            return "skipped"
        storage = get_storage(content.storage_backend)
        # A StorageError here propagates: RQ retries the job later.
        with storage.local_file(content.storage_key) as path:
            try:
                facts = probe(path, current_app.config["MAX_MEDIA_SECONDS"] * 1000)
            except MediaRejected as exc:
                content.move_to(ContentStatus.FAILED, str(exc))
                outbox.emit("content.failed", ContentSchema().dump(content), content.creator_id)
                db.session.commit()
                service.changed(content)
                service.withdrawn.send(content.id)
                log.info("media rejected", extra={"content_id": content_id, "reason": str(exc)})
                return "failed"
            checksum = sha256_of(path)
        if facts.thumbnail is not None:
            content.thumbnail_key = storage.save(
                f"thumbnails/{content.id}.jpg", io.BytesIO(facts.thumbnail), "image/jpeg"
            )
        for name in ("duration_ms", "container", "bitrate", "video_codec", "audio_codec", "width", "height"):
            setattr(content, name, getattr(facts, name))
        content.sha256 = checksum
        content.processed_at = utcnow()
        content.move_to(ContentStatus.READY)
        outbox.emit("content.ready", ContentSchema().dump(content), content.creator_id)
        db.session.commit()
        service.changed(content)
        return "ready"
    finally:
        db.session.remove()
