import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

application = get_wsgi_application()

# Load the URL configuration (and the views it imports) now, while the worker
# boots, rather than in the thread of its first request, which would wait for
# it. (It was first added against the 30 s Ctrl-C stop of `runportal`; that had
# another cause, two stop signals reaching a worker: see runportal.children.)
get_resolver().url_patterns  # noqa: B018 - evaluated for its side effect
