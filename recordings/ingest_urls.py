from django.urls import path

from . import ingest_api, recorder_api

urlpatterns = [
    path("rooms/<str:room_id>/sessions", ingest_api.SessionStartView.as_view(),
         name="ingest-session-start"),
    path("sessions/<str:conf_num>/recording/start", ingest_api.recording_start,
         name="ingest-recording-start"),
    path("sessions/<str:conf_num>/recording/stop", ingest_api.recording_stop,
         name="ingest-recording-stop"),
    path("sessions/<str:conf_num>/live-recording/start", recorder_api.live_recording_start,
         name="ingest-live-recording-start"),
    path("sessions/<str:conf_num>/live-recording/stop", recorder_api.live_recording_stop,
         name="ingest-live-recording-stop"),
    path("sessions/<str:conf_num>", recorder_api.SessionView.as_view(), name="ingest-session"),
    path("sessions/<str:conf_num>/streaming/start", recorder_api.streaming_start,
         name="ingest-streaming-start"),
    path("sessions/<str:conf_num>/streaming/stop", recorder_api.streaming_stop,
         name="ingest-streaming-stop"),
    path("sessions/<str:conf_num>/files", ingest_api.FileUploadView.as_view(),
         name="ingest-files"),
    path("sessions/<str:conf_num>/end", ingest_api.SessionEndView.as_view(), name="ingest-end"),
]  # fmt: skip
