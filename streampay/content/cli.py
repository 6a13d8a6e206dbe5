from __future__ import annotations

import os
import tempfile
import uuid

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from streampay import money
from streampay.content import samples, service
from streampay.content.jobs import enqueue_processing
from streampay.content.models import Content, ContentStatus
from streampay.errors import DomainError
from streampay.extensions import db
from streampay.users import service as users
from streampay.users.models import Role, User

content_cli = AppGroup("content")


@content_cli.command("list")
@click.option("--status", type=click.Choice([s.value for s in ContentStatus]))
def list_content(status: str | None) -> None:
    """Items, newest first, with their status and failure reason."""
    stmt = select(Content).where(Content.deleted_at.is_(None)).order_by(Content.created_at.desc())
    if status:
        stmt = stmt.where(Content.status == ContentStatus(status))
    for c in db.session.scalars(stmt):
        reason = f"  ({c.failure_reason})" if c.failure_reason else ""
        click.echo(f"{c.id}  {c.status.value:<10} {c.title[:40]:<40}{reason}")


@content_cli.command("reprocess")
@click.argument("content_id", type=click.UUID)
def reprocess(content_id: uuid.UUID) -> None:
    """Run the media job again for an item (after a fix, or to refresh its facts)."""
    content = db.session.get(Content, content_id)
    if content is None or content.deleted_at is not None:
        raise click.ClickException(f"no content {content_id}")
    if content.status is not ContentStatus.PROCESSING:
        content.move_to(ContentStatus.PROCESSING)
        db.session.commit()
        service.changed(content)
    enqueue_processing(content)
    click.echo(f"queued {content.id} for processing")


DEMO_PASSWORD = "streampay-demo-1"  # noqa: S105 (demo accounts, printed for the newcomer)
DEMO_ITEMS = [
    ("Sunrise over the harbour", "A calm timelapse of boats leaving at dawn.", "travel", "0.0010000", "video"),
    ("Cooking with fire, part 1", "Grilling vegetables over an open flame.", "food", "0.0020000", "video"),
    ("Deep focus tones", "Ten seconds of a steady tone for concentration.", "music", "0.0005000", "audio"),
]


def _demo_user(email: str, username: str, role: Role) -> User:
    user = db.session.scalar(select(User).where(User.email == email))
    return user or users.create_user(email, username, DEMO_PASSWORD, role, display_name=username.title())


@click.command("seed")
@with_appcontext
def seed() -> None:
    """Create a demo creator, a demo viewer and a few real (generated) media items. Safe to run twice."""
    creator = _demo_user("creator@demo.streampay", "demo-creator", Role.CREATOR)
    _demo_user("viewer@demo.streampay", "demo-viewer", Role.VIEWER)
    existing = set(db.session.scalars(select(Content.title).where(Content.creator_id == creator.id)))
    with tempfile.TemporaryDirectory() as tmp:
        for title, description, category, price, kind in DEMO_ITEMS:
            if title in existing:
                continue
            path = os.path.join(tmp, f"{category}.{'mp4' if kind == 'video' else 'mp3'}")
            if kind == "video":
                # Long enough for examples/stream.py's fifteen seconds: billing stops at the media's end.
                samples.make_video(path, seconds=20, label=title[:20])
            else:
                samples.make_audio(path, seconds=10)
            form = {
                "title": title,
                "description": description,
                "category": category,
                "tags": "demo",
                "price_per_second": money.parse(price),
                "is_published": True,
            }
            try:
                with open(path, "rb") as f:
                    content = service.upload(creator, form, FileStorage(f, filename=os.path.basename(path)))
            except DomainError as exc:
                raise click.ClickException(exc.message) from exc
            enqueue_processing(content)
            click.echo(f"added {content.id}  {title}")
    click.echo(f"demo creator: creator@demo.streampay / {DEMO_PASSWORD}")
    click.echo(f"demo viewer:  viewer@demo.streampay / {DEMO_PASSWORD}")
