from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views import defaults

from portal.api import is_api_path, json_error_response
from portal.health_views import health_page, healthz
from projects import api_urls as room_urls
from projects.views import home
from recordings import archive_urls, cdr_urls


def schema_view(request, *args, **kwargs):
    # drf-spectacular's generator costs ~25 MB; web processes load it only
    # when someone asks for the schema or the docs.
    from drf_spectacular.views import SpectacularAPIView

    return SpectacularAPIView.as_view()(request, *args, **kwargs)


def docs_view(request, *args, **kwargs):
    # The split view loads its set-up code as a script file: the CSP forbids inline scripts.
    from drf_spectacular.views import SpectacularSwaggerSplitView

    return SpectacularSwaggerSplitView.as_view(url_name="schema")(request, *args, **kwargs)


urlpatterns = [
    path("", home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Portal pages. Each app's urls.py holds its project pages under
    # projects/<app_id>/... in its own namespace.
    path("projects/", include("projects.urls")),
    path("", include("recordings.urls")),
    path("", include("delivery.urls")),
    path("projects/", include("demo.urls")),  # 404 unless DEMO_WEBHOOK_INBOX
    # APIs
    # The Video API under EnableX's current prefix and under /v1/, which
    # EnableX's own sample servers call (https://api.enablex.io/v1/rooms...).
    path("video/v2/", include(room_urls.urlpatterns)),
    path("video/v2/", include(archive_urls.urlpatterns)),
    path("video/v2/", include(cdr_urls.urlpatterns)),
    path("v1/", include(room_urls.alias_urlpatterns)),
    path("v1/", include(archive_urls.alias_urlpatterns)),
    path("v1/", include(cdr_urls.alias_urlpatterns)),
    path("ingest/v1/", include("recordings.ingest_urls")),
    path("api/schema/", schema_view, name="schema"),
    path("api/docs/", docs_view, name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("admin/health/", admin.site.admin_view(health_page), name="admin-health"),
    path("admin/", admin.site.urls),
]


def handler400(request, exception):
    # E.g. a Host header the portal does not serve, or too many form fields.
    if is_api_path(request.path):
        return json_error_response(request, 400)
    return defaults.bad_request(request, exception)


def handler404(request, exception):
    # API clients parse every answer as JSON (EnableX's Node sample crashes on HTML).
    if is_api_path(request.path):
        return json_error_response(request, 404)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if is_api_path(request.path):
        return json_error_response(request, 500)
    return defaults.server_error(request)
