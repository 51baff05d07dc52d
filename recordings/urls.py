from django.urls import path

from . import links, serving, views

app_name = "recordings"

urlpatterns = [
    path("projects/<str:app_id>/recordings/", views.report, name="report"),
    path("projects/<str:app_id>/recordings/files/<int:file_id>/", views.file_page, name="file"),
    path("video/recordings/", views.video_recordings, name="video_report"),
    path("dl/<str:token>", links.download, name="download"),
    path(
        "recordings/<str:app_id>/<str:room_id>/<str:conf_num>/<str:name>",
        serving.protected_file,
        name="protected_file",
    ),
]
