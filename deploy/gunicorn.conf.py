"""gunicorn settings of the portal (``gunicorn -c deploy/gunicorn.conf.py
portal.wsgi``); ``make run`` and the test suite's portal use this file too.
Command-line options given after ``-c`` override it (e.g. ``--bind``).

Timeouts (documented in docs/deploy.md with nginx's):
* ``timeout`` 600 s: a gthread worker that stops heart-beating this long is
  restarted. Ingest uploads of several GB stream through a request thread;
  nginx's ``proxy_read_timeout``/``proxy_send_timeout`` are the same 600 s.
* ``graceful_timeout`` 30 s: what a request gets to finish on SIGTERM.
* ``keepalive`` 5 s: idle keep-alive connections from nginx are closed after it.
Slow clients are nginx's job: it buffers whole request bodies before gunicorn
sees them, except on the ingest upload location, which only the media
server (with its APP_KEY) uses.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8001")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 600
graceful_timeout = 30
keepalive = 5

# Access log: /dl/ tokens redacted (portal.log_redaction); the client is
# nginx's X-Real-IP when present.
logger_class = "portal.log_redaction.RedactingLogger"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
access_log_format = '%(h)s %({x-real-ip}i)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
