from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal.health_views import health_page, healthz
from projects.views import home


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
    # APIs
    path("video/v2/", include("projects.api_urls")),
    path("video/v2/", include("recordings.archive_urls")),
    path("ingest/v1/", include("recordings.ingest_urls")),
    path("api/schema/", schema_view, name="schema"),
    path("api/docs/", docs_view, name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("admin/health/", admin.site.admin_view(health_page), name="admin-health"),
    path("admin/", admin.site.urls),
]
