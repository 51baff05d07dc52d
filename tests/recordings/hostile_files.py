"""Hostile recordings planted in a running portal (tests/servers/portal.py):
an HTML page with script and a JavaScript file, stored with the client's
types as an older ingest kept them, or as a hostile row could say. They are
written straight into the portal's store and database because ingest refuses
them now; serving must make them inert anyway."""

from __future__ import annotations

from dataclasses import dataclass

from tests.servers.portal import PortalProcesses

# The page runs its own script and loads the second upload as a script; each
# would leave a mark a test can read (a global, the title) and call the sink.
PAGE = """<!doctype html>
<html><head><title>innocent</title>
<script>window.pwned = "inline"; document.title = "pwned"; fetch("{sink}/hit-page");</script>
<script src="{script_link}"></script>
</head><body><h1>hostile page</h1><img src="{sink}/hit-img"></body></html>
"""
SCRIPT = (
    """window.pwnedByFile = "file"; document.title = "pwned by file"; fetch("{sink}/hit-js");"""
)

PLANT = """
import hashlib
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from projects.models import Project, Room
from recordings.links import link_for
from recordings.models import RecordingFile, Session

project = Project.objects.get(app_id={app_id!r})
room = Room.objects.create(project=project, name="Hostile uploads")
session = Session.objects.create(project=project, room=room, state="ready")

def plant(name, text, content_type):
    data = text.encode()
    base = f"{{project.app_id}}/{{room.room_id}}/{{session.conf_num}}"
    path = storages["recordings"].save(f"{{base}}/{{name}}", ContentFile(data))
    rf = RecordingFile.objects.create(
        session=session, project=project, type="individual", name=name, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), storage_path=path, content_type=content_type,
    )
    print(f"{{name}}={{rf.url_path}} {{link_for(rf)}}")
    return rf

script = plant("evil.js", {script!r}, "application/javascript")
page = {page!r}.replace("{{script_link}}", link_for(script) + "?inline=1")
plant("evil.html", page, "text/html")
plant("evil-as-video.mp4", page, "video/mp4")
"""


@dataclass(frozen=True)
class Planted:
    path: str  # /recordings/<app_id>/<room_id>/<conf_num>/<name>
    link: str  # /dl/<token>


def plant_hostile_files(portal: PortalProcesses, app_id: str, sink: str) -> dict[str, Planted]:
    """Plant evil.js, evil.html (stored as text/html) and evil-as-video.mp4 (the
    same page, a row that says video/mp4); ``sink`` is a URL that records hits."""
    code = PLANT.format(
        app_id=app_id,
        script=SCRIPT.format(sink=sink),
        page=PAGE.format(sink=sink, script_link="{script_link}"),
    )
    out = portal.manage("shell", "-c", code).stdout
    planted = {}
    for line in out.splitlines():
        name, _, rest = line.partition("=")
        if rest:
            path, link = rest.split()
            planted[name] = Planted(path, link)
    return planted
