"""A URLconf for one test: the portal's routes plus a view that fails, under
the API prefix and outside it, to see what a server error looks like."""

from django.urls import path

from portal.urls import handler400, handler404, handler500  # noqa: F401
from portal.urls import urlpatterns as portal_urlpatterns


def boom(request):
    raise RuntimeError("boom: an unexpected failure")


urlpatterns = [path("v1/boom", boom), path("boom", boom), *portal_urlpatterns]
