from portal.api import api_routes

from . import archive_api as api

# EnableX's documented routes first; the portal's older spellings stay as aliases.
PERIOD = "<str:date_from>/<str:date_to>"
ROUTES = [
    (f"archive/period/{PERIOD}", api.ArchivePeriodView, "api-archive-period"),
    ("archive/room/<str:room_id>", api.ArchiveRoomView, "api-archive-room"),
    (f"archive/room-period/<str:room_id>/{PERIOD}", api.ArchiveRoomPeriodView,
     "api-archive-room-period"),
    (f"archive/room-period/<str:room_id>/period/{PERIOD}", api.ArchiveRoomPeriodAliasView,
     "api-archive-room-period-alt"),
    (f"archive/room/<str:room_id>/period/{PERIOD}", api.ArchiveRoomPeriodOldView,
     "api-archive-room-period-old"),
    ("archive/conf/<str:conf_num>", api.ArchiveConfNumView, "api-archive-conf"),
    ("archive/conf_num/<str:conf_num>", api.ArchiveConfNumAliasView, "api-archive-conf-num"),
]  # fmt: skip
urlpatterns = api_routes(ROUTES)
alias_urlpatterns = api_routes(ROUTES, documented=False)
