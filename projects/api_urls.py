from django.urls import path

from . import api

# EnableX clients use both /rooms and /rooms/; the slash variants stay out of the schema.
urlpatterns = [
    path("rooms", api.RoomListView.as_view(), name="api-rooms"),
    path("rooms/", api.RoomListView.as_view(schema=None)),
    path("rooms/<str:room_id>", api.RoomDetailView.as_view(), name="api-room"),
    path("rooms/<str:room_id>/", api.RoomDetailView.as_view(schema=None)),
]
