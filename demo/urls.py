from django.urls import path

from . import views

app_name = "demo"

urlpatterns = [
    path("<str:app_id>/webhook-inbox/", views.inbox_page, name="inbox"),
    path("<str:app_id>/webhook-inbox/receive", views.receive, name="inbox_receive"),
]
