"""With no SMTP_HOST, mail is written to the log (a line per message) instead of being sent."""

from __future__ import annotations

import logging

from flask_mailman.backends.base import BaseEmailBackend

log = logging.getLogger("streampay.mail")


class EmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        for message in email_messages:
            log.info(
                "mail not sent (no SMTP_HOST): %s",
                message.subject,
                extra={"to": list(message.to), "subject": message.subject, "body": message.body},
            )
        return len(email_messages)
