"""The SSH kinds' URL, served under the delivery app's names (``delivery:keypair``)."""

from django.urls import path

from . import views

# Under a destination's settings page, projects/<app_id>/settings/delivery/<dest_id>/.
destination_urlpatterns = [
    path("key-pair/", views.destination_keypair, name="keypair"),
]
urlpatterns: list = []
