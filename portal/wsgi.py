import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

application = get_wsgi_application()

# Load the URL configuration (and the views it imports) now, while the worker
# boots in its main thread, rather than in the thread of its first request:
# a stop that arrives mid-import then ends a booting worker at once, instead of
# leaving a request thread half-way through an import for the worker to wait on.
get_resolver().url_patterns  # noqa: B018 - evaluated for its side effect
