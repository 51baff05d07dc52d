from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from projects.views import home

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
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
