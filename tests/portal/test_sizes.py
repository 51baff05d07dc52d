"""One size formatter: a number of bytes reads the same on every page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from delivery.models import DeliveredFile, Delivery, DeliveryDestination
from portal.sizes import human_size
from recordings.models import RecordingFile, Session
from tests.factories import make_recording

GB_AND_A_HALF = 1_500_000_000


@pytest.mark.parametrize(
    "size, text",
    [
        (None, "0 bytes"),
        (0, "0 bytes"),
        (999, "999 bytes"),
        (1000, "1.0 KB"),
        (4000, "4.0 KB"),
        (999_949, "999.9 KB"),
        (999_950, "1.0 MB"),
        (GB_AND_A_HALF, "1.5 GB"),
        (500 * 1024**3, "536.9 GB"),
        (2 * 10**15, "2000.0 TB"),
    ],
)
def test_sizes_are_written_in_decimal_units_with_one_decimal(size, text):
    assert human_size(size) == text


def test_the_same_file_reads_the_same_on_the_report_the_file_page_and_deliveries(
    client, world, local_roots
):
    recording = make_recording(world.project, type=RecordingFile.Type.CHAT, name="chat.json")
    started = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    RecordingFile.objects.filter(pk=recording.pk).update(size=GB_AND_A_HALF)
    Session.objects.filter(pk=recording.session_id).update(
        started_at=started, total_size=GB_AND_A_HALF, state=Session.State.READY
    )
    destination = DeliveryDestination.objects.create(
        project=world.project, name="nas", kind="local", file_types=["chat"],
        config={"path": str(local_roots)},
    )  # fmt: skip
    delivery = Delivery.objects.create(
        session=recording.session, destination=destination, bytes_total=GB_AND_A_HALF,
        bytes_sent=GB_AND_A_HALF, state=Delivery.State.DELIVERED,
    )  # fmt: skip
    DeliveredFile.objects.create(delivery=delivery, recording_file=recording)
    client.force_login(world.alice)
    pages = {
        "report": client.get(
            reverse("recordings:report", args=[world.app_id]),
            {"from": "2026-03-01", "to": "2026-03-31"},
        ),
        "file": client.get(reverse("recordings:file", args=[world.app_id, recording.pk])),
        "deliveries": client.get(reverse("delivery:deliveries", args=[world.app_id])),
    }
    for name, response in pages.items():
        html = response.content.decode()
        assert response.status_code == 200, name
        assert "1.5 GB" in html, name
        assert "1.4 GB" not in html and "1500.0 MB" not in html, name
