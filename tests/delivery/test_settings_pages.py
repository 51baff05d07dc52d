"""Settings → Recording & Delivery: destinations list, add/edit forms with
write-only secrets, "Test connection" against real servers, trusting an SSH
host key and generating a key pair."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from delivery.forms import kind_form
from delivery.models import DeliveryDestination
from projects.models import AuditEvent, Role
from tests.factories import save_destination
from tests.servers import sshd as sshd_servers
from tests.servers.moto_s3 import MotoS3Server, s3, s3_server  # noqa: F401

sshd_server = sshd_servers.sshd_server
sshd = sshd_servers.sshd

SECRET = "pw-Zq8v1x-never-shown"

# Local folder destinations under the test's tmp folder (DELIVERY_LOCAL_ROOTS).
pytestmark = pytest.mark.usefixtures("local_roots")


def settings_url(world, **query) -> str:
    url = reverse("delivery:settings", args=[world.app_id])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def edit_url(world, dest) -> str:
    return reverse("delivery:edit", args=[world.app_id, dest.pk])


def action_url(world, name, dest) -> str:
    return reverse(f"delivery:{name}", args=[world.app_id, dest.pk])


def make_destination(world, kind: str, name: str | None = None, **settings) -> DeliveryDestination:
    defaults = {k: f.initial for k, f in kind_form(kind).fields.items() if f.initial is not None}
    form = kind_form(kind, {**defaults, **settings}, web=False)
    assert form.is_valid(), form.errors
    return save_destination(
        world.project, kind, form, name or kind, ["transcoded", "chat"], True
    )


def post_new(client, world, kind: str, **fields):
    data = {"kind": kind, "name": kind, "enabled": "on", "file_types": ["transcoded"], **fields}
    return client.post(settings_url(world), data)


def raw_secrets(dest) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT secrets FROM {DeliveryDestination._meta.db_table} WHERE id = %s", [dest.pk]
        )
        return str(cursor.fetchone()[0])


# -- who may see what ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.VIEWER, Role.STAFF])
def test_members_below_admin_get_403(client, world, member, role, tmp_path):
    member(role, client)
    assert client.get(settings_url(world)).status_code == 403
    dest = make_destination(world, "local", path=str(tmp_path))
    assert client.get(edit_url(world, dest)).status_code == 403
    assert client.post(action_url(world, "test", dest)).status_code == 403


def test_outsiders_get_404_on_every_page(client, world, tmp_path):
    client.force_login(world.charlie)
    dest = make_destination(world, "local", path=str(tmp_path))
    assert client.get(settings_url(world)).status_code == 404
    assert client.get(edit_url(world, dest)).status_code == 404
    assert client.post(action_url(world, "delete", dest)).status_code == 404
    assert DeliveryDestination.objects.filter(pk=dest.pk).exists()


def test_a_destination_of_another_project_is_404(client, world, make_user, tmp_path):
    from projects.actions.projects import do_create_project

    other = do_create_project("Other", acting_user=world.alice).project
    form = kind_form("local", {"path": str(tmp_path)}, web=False)
    assert form.is_valid()
    theirs = save_destination(other, "local", form, "theirs", ["chat"], True)
    client.force_login(world.alice)
    url = reverse("delivery:edit", args=[world.app_id, theirs.pk])
    assert client.get(url).status_code == 404


# -- listing and adding ------------------------------------------------------------------------------


def test_admins_see_destinations_with_a_secret_free_description(client, world, member, tmp_path):
    member(Role.ADMIN, client)
    make_destination(world, "local", "nas", path=str(tmp_path))
    html = client.get(settings_url(world)).content.decode()
    assert "nas" in html and f"file://{tmp_path}" in html
    assert "Transcoded, Chat data" in html
    assert "Test connection" in html


def test_without_javascript_the_kind_parameter_picks_the_form(client, world):
    client.force_login(world.alice)
    chooser = client.get(settings_url(world)).content.decode()
    assert 'name="kind"' in chooser and 'name="bucket"' not in chooser
    s3_form = client.get(settings_url(world, kind="s3")).content.decode()
    assert 'name="bucket"' in s3_form and 'name="secret_access_key"' in s3_form
    sftp_form = client.get(settings_url(world, kind="sftp")).content.decode()
    assert 'name="host"' in sftp_form and 'name="generate_key"' in sftp_form
    assert 'name="file_types"' in sftp_form


def test_adding_a_local_folder_saves_it_and_audits_without_values(client, world, tmp_path):
    client.force_login(world.alice)
    response = post_new(client, world, "local", path=str(tmp_path), root="rec")
    dest = DeliveryDestination.objects.get()
    assert response.status_code == 302 and response["Location"] == edit_url(world, dest)
    assert dest.kind == "local" and dest.config["path"] == str(tmp_path)
    assert dest.config["root"] == "rec" and dest.file_types == ["transcoded"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELIVERY_CHANGED)
    assert event.actor == world.alice and event.detail["change"] == "created"


def test_bad_input_is_reported_next_to_the_field_and_other_values_are_kept(client, world):
    client.force_login(world.alice)
    response = post_new(client, world, "local", path="relative/folder", root="keep-me")
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_path_error"' in html and "Give an absolute path" in html
    assert 'value="keep-me"' in html and 'value="relative/folder"' in html
    assert not DeliveryDestination.objects.exists()


def test_a_duplicate_name_is_refused(client, world, tmp_path):
    client.force_login(world.alice)
    make_destination(world, "local", "local", path=str(tmp_path))
    response = post_new(client, world, "local", path=str(tmp_path))
    assert response.status_code == 400
    assert "Another destination of this project has this name" in response.content.decode()


# -- secrets ---------------------------------------------------------------------------------------


def test_a_posted_secret_is_never_rendered_back_nor_stored_in_plaintext(client, world):
    client.force_login(world.alice)
    response = post_new(
        client, world, "sftp", host="sftp.example.com", port="22", username="rec", password=SECRET
    )
    assert response.status_code == 302
    dest = DeliveryDestination.objects.get()
    assert dest.secrets == {"password": SECRET}
    assert SECRET not in raw_secrets(dest)
    assert SECRET not in str(dest.config)
    for url in (edit_url(world, dest), settings_url(world)):
        assert SECRET not in client.get(url).content.decode()
    assert all(SECRET not in str(e.detail) for e in AuditEvent.objects.all())


def test_a_secret_is_not_echoed_when_the_form_has_errors(client, world):
    client.force_login(world.alice)
    response = post_new(client, world, "sftp", host="", port="22", username="rec", password=SECRET)
    assert response.status_code == 400
    assert SECRET not in response.content.decode()


def test_a_blank_secret_keeps_the_stored_one(client, world):
    client.force_login(world.alice)
    dest = make_destination(world, "ftp", host="ftp.example.com", username="rec", password=SECRET)
    data = {
        "name": "ftp", "enabled": "on", "file_types": ["chat"], "host": "ftp.example.com",
        "port": "21", "username": "rec2", "password": "", "tls": "explicit", "passive": "on",
    }  # fmt: skip
    html = client.get(edit_url(world, dest)).content.decode()
    assert "Leave blank to keep the stored value" in html
    response = client.post(edit_url(world, dest), data)
    assert response.status_code == 302
    dest.refresh_from_db()
    assert dest.secrets["password"] == SECRET
    assert dest.config["username"] == "rec2" and dest.file_types == ["chat"]


def test_the_pinned_fingerprint_is_kept_unless_host_or_port_change(client, world):
    client.force_login(world.alice)
    dest = make_destination(world, "sftp", host="a.example.com", username="rec", password="x")
    dest.config = {**dest.config, "pinned_fingerprint": "SHA256:abc"}
    dest.save()
    data = {"name": "sftp", "enabled": "on", "file_types": ["chat"], "port": "22", "username": "r"}
    client.post(edit_url(world, dest), {**data, "host": "a.example.com", "root": "new"})
    dest.refresh_from_db()
    assert dest.config["pinned_fingerprint"] == "SHA256:abc" and dest.config["root"] == "new"
    client.post(edit_url(world, dest), {**data, "host": "b.example.com"})
    dest.refresh_from_db()
    assert "pinned_fingerprint" not in dest.config


def test_deleting_a_destination(client, world, tmp_path):
    client.force_login(world.alice)
    dest = make_destination(world, "local", path=str(tmp_path))
    response = client.post(action_url(world, "delete", dest))
    assert response.status_code == 302
    assert not DeliveryDestination.objects.exists()
    assert AuditEvent.objects.filter(detail__change="deleted").exists()


# -- Test connection --------------------------------------------------------------------------------


def test_testing_a_local_folder_writes_and_removes_a_probe(client, world, tmp_path):
    client.force_login(world.alice)
    dest = make_destination(world, "local", path=str(tmp_path), root="in")
    response = client.post(action_url(world, "test", dest), follow=True)
    html = response.content.decode()
    assert "passed: Wrote and removed a probe" in html
    assert list((tmp_path / "in").iterdir()) == []


def test_a_failing_test_shows_the_exact_reason(client, world, tmp_path):
    client.force_login(world.alice)
    dest = make_destination(world, "local", path=str(tmp_path / "not-mounted"))
    response = client.post(action_url(world, "test", dest), {"back": "edit"}, follow=True)
    assert response.redirect_chain[-1][0] == edit_url(world, dest)
    assert f"Folder {tmp_path / 'not-mounted'} does not exist or is not mounted" in (
        response.content.decode()
    )


def test_testing_s3_against_moto_passes_and_a_wrong_bucket_fails(client, world, s3):  # noqa: F811
    client.force_login(world.alice)
    good = make_destination(world, "s3", "s3", **s3.destination_config(root="probe-test"))
    html = client.post(action_url(world, "test", good), follow=True).content.decode()
    assert "passed: Wrote and removed a probe" in html
    assert s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="probe-test").get("KeyCount") == 0
    bad = make_destination(world, "s3", "bad", **s3.destination_config(bucket="no-such-bucket"))
    html = client.post(action_url(world, "test", bad), follow=True).content.decode()
    assert "Test of “bad” failed" in html and "no-such-bucket" in html
    assert s3.secret_access_key not in html


# -- SSH host keys and key pairs --------------------------------------------------------------------


def sftp_destination(world, server, **extra) -> DeliveryDestination:
    settings = {k: v for k, v in server.config().items() if k != "pinned_fingerprint"}
    return make_destination(world, "sftp", **{**settings, **extra})


def test_an_unknown_host_key_is_shown_then_trusted_and_the_test_passes(client, world, sshd):
    client.force_login(world.alice)
    dest = sftp_destination(world, sshd)
    response = client.post(action_url(world, "test", dest))
    html = response.content.decode()
    assert response.status_code == 200
    assert sshd.fingerprint in html and "Trust this key" in html
    assert "pinned_fingerprint" not in DeliveryDestination.objects.get(pk=dest.pk).config

    response = client.post(action_url(world, "trust", dest), {"fingerprint": sshd.fingerprint})
    assert response.status_code == 302
    dest.refresh_from_db()
    assert dest.config["pinned_fingerprint"] == sshd.fingerprint
    html = client.get(response["Location"]).content.decode()
    assert "passed: Wrote and removed a probe" in html
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELIVERY_HOST_KEY_TRUSTED)
    assert event.detail["fingerprint"] == sshd.fingerprint and event.actor == world.alice


def test_trusting_a_key_the_server_no_longer_presents_is_refused(client, world, sshd):
    client.force_login(world.alice)
    dest = sftp_destination(world, sshd)
    other = "SHA256:" + "A" * 43
    response = client.post(action_url(world, "trust", dest), {"fingerprint": other}, follow=True)
    html = response.content.decode()
    assert f"The server now presents {sshd.fingerprint}" in html and "Nothing was trusted" in html
    dest.refresh_from_db()
    assert "pinned_fingerprint" not in dest.config


def test_a_generated_key_pair_shows_the_public_key_and_logs_in(client, world, sshd):
    client.force_login(world.alice)
    dest = sftp_destination(world, sshd)
    dest.config["pinned_fingerprint"] = sshd.fingerprint
    dest.secrets = {}
    dest.save()
    response = client.post(action_url(world, "keypair", dest), follow=True)
    dest.refresh_from_db()
    public = dest.config["public_key"]
    assert public.startswith("ssh-ed25519 ") and public in response.content.decode()
    assert "BEGIN OPENSSH PRIVATE KEY" in dest.secrets["private_key"]
    assert "PRIVATE KEY" not in response.content.decode()
    assert "PRIVATE KEY" not in raw_secrets(dest)
    sshd.authorize(dest.config["username"], public)
    html = client.post(action_url(world, "test", dest), follow=True).content.decode()
    assert "passed: Wrote and removed a probe" in html


def test_ticking_generate_key_pair_when_adding_an_sftp_destination(client, world):
    client.force_login(world.alice)
    response = post_new(
        client, world, "sftp", host="sftp.example.com", port="22", username="rec",
        generate_key="on",
    )  # fmt: skip
    assert response.status_code == 302
    dest = DeliveryDestination.objects.get()
    assert "private_key" in dest.secrets
    html = client.get(response["Location"]).content.decode()
    assert dest.config["public_key"] in html


# -- the egress guard ------------------------------------------------------------------------------


def test_the_page_refuses_an_internal_host_naming_the_rule(client, world, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    client.force_login(world.alice)
    response = post_new(
        client, world, "sftp", host="169.254.169.254", port="22", username="rec", password=SECRET
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "169.254.169.254 is a link-local address" in html
    assert "only connects to public internet addresses" in html
    assert not DeliveryDestination.objects.exists()


def test_test_connection_to_a_host_refused_since_saving_says_why(client, world, s3, settings):  # noqa: F811
    client.force_login(world.alice)
    dest = make_destination(world, "s3", "s3", **s3.destination_config(root="probe-test"))
    settings.OUTBOUND_ALLOWED_NETWORKS = []  # e.g. the operator narrowed the exemptions
    html = client.post(action_url(world, "test", dest), follow=True).content.decode()
    assert "Test of “s3” failed: 127.0.0.1 is a loopback address" in html
