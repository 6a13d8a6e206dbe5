"""gunicorn settings for the web dyno, from the environment.

Each WebSocket holds a thread of the gthread worker (flask-sock's advice), so a worker
process gets many threads: WEB_CONCURRENCY processes x WEB_THREADS sockets per dyno.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '3000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "1000"))
worker_connections = threads + 100
# Idle sockets are kept alive by WebSocket pings; plain HTTP keep-alive stays short.
keepalive = 5
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "0"))
accesslog = None  # the app writes JSON access lines itself
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
