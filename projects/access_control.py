"""Rules of the Recording Access Control settings page."""

from __future__ import annotations

from .models import Project


def access_control_available(project: Project) -> bool:
    """As in the reference: the tab exists only once the project has at
    least one session recording."""
    from recordings.models import RecordingFile

    return RecordingFile.objects.filter(project=project).exists()
