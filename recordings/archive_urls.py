from django.urls import URLPattern, path
from rest_framework.views import APIView

from . import archive_api as api

# EnableX clients may add a trailing slash; those variants stay out of the schema.
PERIOD = "<str:date_from>/<str:date_to>"
ROUTES: list[tuple[str, type[APIView], str]] = [
    (f"archive/period/{PERIOD}", api.ArchivePeriodView, "api-archive-period"),
    ("archive/room/<str:room_id>", api.ArchiveRoomView, "api-archive-room"),
    (
        f"archive/room/<str:room_id>/period/{PERIOD}",
        api.ArchiveRoomPeriodView,
        "api-archive-room-period",
    ),
    ("archive/conf_num/<str:conf_num>", api.ArchiveConfNumView, "api-archive-conf-num"),
]

urlpatterns: list[URLPattern] = []
for route, view, name in ROUTES:
    urlpatterns += [
        path(route, view.as_view(), name=name),
        path(f"{route}/", view.as_view(schema=None)),
    ]
