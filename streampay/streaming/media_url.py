"""Short-lived signed media URLs for a session: what a browser's <video> plays, since it cannot send headers.

A URL names its session and carries a signature over (session, viewer) with the time it was made.
It plays only that session's content, only while the session is active, and only for MEDIA_URL_TTL
seconds; a player that needs longer asks for a fresh one (its Authorization header proves who it is).
"""

from __future__ import annotations

import time
import uuid

from flask import current_app, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from streampay.content.models import Content, ContentStatus
from streampay.errors import Forbidden, NotFound
from streampay.extensions import db
from streampay.streaming.models import SessionStatus, StreamSession

SALT = "streampay.media-url"


class SessionEnded(Forbidden):
    code = "session_not_active"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["JWT_SECRET_KEY"], salt=SALT)


def issue(session_id: uuid.UUID, viewer_id: uuid.UUID) -> dict:
    """A signed URL for one of the viewer's active sessions: {url, expires_at} (epoch seconds)."""
    session = db.session.get(StreamSession, session_id)
    if session is None or session.viewer_id != viewer_id:
        raise NotFound("No such session.")
    if session.status is not SessionStatus.ACTIVE:
        raise SessionEnded("This session has ended; start a new one to play again.")
    token = _serializer().dumps([str(session.id), str(viewer_id)])
    url = url_for("streaming.session_media", session_id=session.id, token=token)
    return {"url": url, "expires_at": int(time.time()) + current_app.config["MEDIA_URL_TTL"]}


def playable(session_id: uuid.UUID, token: str) -> Content:
    """The content a signed URL may play, or Forbidden: a bad, expired or foreign signature, or an ended session."""
    try:
        signed_session, viewer_id = _serializer().loads(token, max_age=current_app.config["MEDIA_URL_TTL"])
    except SignatureExpired as exc:
        raise Forbidden("This media URL has expired; ask for a fresh one.") from exc
    except (BadSignature, ValueError, TypeError) as exc:
        raise Forbidden("This media URL is not valid.") from exc
    if signed_session != str(session_id):
        raise Forbidden("This media URL is not valid.")
    session = db.session.get(StreamSession, session_id)
    if session is None or str(session.viewer_id) != viewer_id:
        raise Forbidden("This media URL is not valid.")
    if session.status is not SessionStatus.ACTIVE:
        raise SessionEnded("This session has ended; start a new one to play again.")
    content = db.session.get(Content, session.content_id)
    if content is None or content.deleted_at is not None or content.status is not ContentStatus.READY:
        raise NotFound("No such content.")
    return content
