from django.urls import path

from . import views

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("new/", views.project_create, name="create"),
    path("<str:app_id>/", views.project_detail, name="detail"),
    path("<str:app_id>/app-key/", views.regenerate_app_key, name="regenerate_app_key"),
]
