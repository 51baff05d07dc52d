from django.urls import path

from . import deliveries_views, views

app_name = "delivery"

SETTINGS = "projects/<str:app_id>/settings/delivery/"
DESTINATION = SETTINGS + "<int:dest_id>/"
DELIVERIES = "projects/<str:app_id>/deliveries/"

urlpatterns = [
    path(SETTINGS, views.delivery_settings, name="settings"),
    path(DESTINATION, views.destination_edit, name="edit"),
    path(DESTINATION + "delete/", views.destination_delete, name="delete"),
    path(DESTINATION + "test/", views.destination_test, name="test"),
    path(DESTINATION + "trust/", views.destination_trust, name="trust"),
    path(DESTINATION + "key-pair/", views.destination_keypair, name="keypair"),
    path(DESTINATION + "google/connect/", views.google_connect, name="google_connect"),
    path(DESTINATION + "google/disconnect/", views.google_disconnect, name="google_disconnect"),
    # Registered with Google as the OAuth client's redirect URI: one fixed URL.
    path("delivery/google/callback/", views.google_callback, name="google_callback"),
    path(DELIVERIES, deliveries_views.deliveries, name="deliveries"),
    path(DELIVERIES + "progress/", deliveries_views.deliveries_progress, name="progress"),
    path(DELIVERIES + "retry-failed/", deliveries_views.retry_failed, name="retry_failed"),
    path(DELIVERIES + "past-sessions/", deliveries_views.past_sessions, name="past_sessions"),
    path(DELIVERIES + "<int:delivery_id>/redeliver/", deliveries_views.redeliver, name="redeliver"),
]
