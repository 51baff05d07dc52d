"""The Google account flow's URLs, served under the delivery app's names
(``delivery:google_connect`` ...); DESIGN.md fixes their paths."""

from django.urls import path

from . import views

# Under a destination's settings page, projects/<app_id>/settings/delivery/<dest_id>/.
destination_urlpatterns = [
    path("google/connect/", views.google_connect, name="google_connect"),
    path("google/disconnect/", views.google_disconnect, name="google_disconnect"),
]
# Registered with Google as the OAuth client's redirect URI: one fixed URL.
urlpatterns = [
    path("delivery/google/callback/", views.google_callback, name="google_callback"),
]
