import pytest
from django.core.exceptions import ValidationError

from projects.rooms import validate_room_settings


def test_defaults_are_filled_in():
    clean = validate_room_settings({})
    assert clean["mode"] == "group"
    assert clean["auto_recording"] is False
    assert clean["live_recording"] == {"auto_recording": False, "url": ""}


def test_enablex_sample_settings_are_accepted_and_kept():
    clean = validate_room_settings(
        {
            "description": "Tele",
            "mode": "lecture",
            "scheduled": False,
            "adhoc": False,
            "participants": "2",
            "moderators": "1",
            "quality": "SD",
            "auto_recording": True,
            "live_recording": {"auto_recording": True, "url": "https://view.example.com/x"},
        }
    )
    assert clean["quality"] == "SD"
    assert clean["auto_recording"] is True
    assert clean["live_recording"]["url"] == "https://view.example.com/x"


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"mode": "party"}, "settings.mode"),
        ({"auto_recording": "yes"}, "settings.auto_recording"),
        ({"live_recording": {"auto_recording": True}}, "settings.live_recording.url"),
        ({"live_recording": {"url": "ftp://x"}}, "settings.live_recording.url"),
        ({"live_recording": {"colour": 1}}, "settings.live_recording.colour"),
        ({"chat_only": True, "auto_recording": True}, "settings.chat_only"),
        ({"nested": {"a": 1}}, "settings.nested"),
    ],
)
def test_invalid_settings_name_the_field(raw, field):
    with pytest.raises(ValidationError) as info:
        validate_room_settings(raw)
    assert field in info.value.message_dict


def test_patch_merges_over_the_stored_settings():
    base = validate_room_settings({"auto_recording": True, "quality": "HD"})
    clean = validate_room_settings({"mode": "lecture"}, base=base)
    assert clean["auto_recording"] is True and clean["quality"] == "HD" and clean["mode"] == "lecture"
