from django.urls import URLPattern, URLResolver, path

from . import deliveries_views, settings_views
from .destinations import kind_urlconfs

app_name = "delivery"

SETTINGS = "projects/<str:app_id>/settings/delivery/"
DESTINATION = SETTINGS + "<int:dest_id>/"
DELIVERIES = "projects/<str:app_id>/deliveries/"

urlpatterns: list[URLPattern | URLResolver] = [
    path(SETTINGS, settings_views.delivery_settings, name="settings"),
    path(DESTINATION, settings_views.destination_edit, name="edit"),
    path(DESTINATION + "delete/", settings_views.destination_delete, name="delete"),
    path(DESTINATION + "test/", settings_views.destination_test, name="test"),
    path(DESTINATION + "trust/", settings_views.destination_trust, name="trust"),
    path(DELIVERIES, deliveries_views.deliveries, name="deliveries"),
    path(DELIVERIES + "progress/", deliveries_views.deliveries_progress, name="progress"),
    path(DELIVERIES + "retry-failed/", deliveries_views.retry_failed, name="retry_failed"),
    path(DELIVERIES + "past-sessions/", deliveries_views.past_sessions, name="past_sessions"),
    path(DELIVERIES + "<int:delivery_id>/redeliver/", deliveries_views.redeliver, name="redeliver"),
]
# The kinds' own pages (e.g. Google's OAuth connect, an SSH key pair), under
# the same names (delivery:google_connect, delivery:keypair, ...).
# Flat, not include()d, so each pattern reads as one route.
for urlconf in kind_urlconfs():
    urlpatterns += [
        path(DESTINATION + str(p.pattern), p.callback, name=p.name)
        for p in urlconf.destination_urlpatterns
    ]
    urlpatterns += urlconf.urlpatterns
