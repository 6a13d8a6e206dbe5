"""Mail for what people want by mail (low balance, payout sent, payout refused), via flask-mailman.

Sent by an RQ job from the event outbox; SMTP_* settings, or the log when SMTP_HOST is unset.
"""

from __future__ import annotations

from flask import Flask
from flask_mailman import Mail

mail = Mail()


def init_app(app: Flask) -> None:
    cfg = app.config
    cfg.setdefault("MAIL_BACKEND", "smtp" if cfg["SMTP_HOST"] else "streampay.mail.backend")
    cfg.setdefault("MAIL_SERVER", cfg["SMTP_HOST"] or "localhost")
    cfg.setdefault("MAIL_PORT", cfg["SMTP_PORT"])
    cfg.setdefault("MAIL_USERNAME", cfg["SMTP_USER"])
    cfg.setdefault("MAIL_PASSWORD", cfg["SMTP_PASSWORD"])
    cfg.setdefault("MAIL_USE_TLS", cfg["SMTP_STARTTLS"])
    cfg.setdefault("MAIL_DEFAULT_SENDER", cfg["SMTP_FROM"])
    cfg.setdefault("MAIL_TIMEOUT", cfg["SMTP_TIMEOUT"])
    mail.init_app(app)
