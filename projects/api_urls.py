from portal.api import api_routes

from . import api

ROUTES = [
    ("rooms", api.RoomListView, "api-rooms"),
    ("rooms/<str:room_id>", api.RoomDetailView, "api-room"),
]
urlpatterns = api_routes(ROUTES)
alias_urlpatterns = api_routes(ROUTES, documented=False)
