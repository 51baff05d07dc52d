from portal.api import api_routes

from . import cdr_api as api

PERIOD = "<str:date_from>/<str:date_to>"
ROUTES = [
    (f"cdr/period/{PERIOD}", api.CdrPeriodView, "api-cdr-period"),
    ("cdr/room/<str:room_id>", api.CdrRoomView, "api-cdr-room"),
    (f"cdr/room-period/<str:room_id>/{PERIOD}", api.CdrRoomPeriodView, "api-cdr-room-period"),
    ("cdr/conf/<str:conf_num>", api.CdrConfView, "api-cdr-conf"),
]
urlpatterns = api_routes(ROUTES)
alias_urlpatterns = api_routes(ROUTES, documented=False)
