from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import models
from django.db.models import Manager
from django.urls import reverse
from django.utils import timezone

from portal.fields import EncryptedTextField


def new_object_id() -> str:
    """24 hex digits, like the platform's room and app ids."""
    return secrets.token_hex(12)


class Role(models.TextChoices):
    # Ordered from most to least powerful; see Role.rank().
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    STAFF = "staff", "Staff"
    VIEWER = "viewer", "Viewer"

    @classmethod
    def rank(cls, role: str) -> int:
        ranks: dict[str, int] = {cls.VIEWER: 0, cls.STAFF: 1, cls.ADMIN: 2, cls.OWNER: 3}
        return ranks[role]


class Project(models.Model):
    name = models.CharField(max_length=120)
    app_id = models.CharField(max_length=24, unique=True, default=new_object_id, editable=False)
    # Hashed with Django's password hashers; the plain key is shown once.
    app_key_hash = models.CharField(max_length=255, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("projects:detail", args=[self.app_id])

    def set_app_key(self) -> str:
        """Generate a new app key, store its hash and return the plain key.

        The key never starts with "-", so it can follow an option on a
        command line (``--app-key KEY``, ``curl -u ID:KEY``) without being
        read as an option itself.
        """
        key = secrets.token_urlsafe(24)
        while key.startswith("-"):
            key = secrets.token_urlsafe(24)
        self.app_key_hash = make_password(key)
        return key

    def check_app_key(self, raw: str) -> bool:
        from .credentials import cached_check

        return cached_check(raw, self.app_key_hash)


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="unique_membership"),
        ]
        ordering = ["project", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.project}"

    def has_role(self, role: str) -> bool:
        return Role.rank(self.role) >= Role.rank(role)


class RecordingCredentials(models.Model):
    """HTTP Basic credentials guarding a project's recording files."""

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, related_name="recording_credentials"
    )
    username = models.CharField(max_length=64, unique=True)
    password_hash = models.CharField(max_length=255)
    # The generated default password, kept (encrypted) only so the report can
    # show it until someone sets their own; then it is discarded.
    default_password = EncryptedTextField(blank=True, default="")
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "recording credentials"

    def __str__(self) -> str:
        return f"recording credentials of {self.project}"

    def matches(self, username: str, password: str) -> bool:
        from .credentials import cached_check

        # Bytes: compare_digest refuses str with non-ASCII characters, and the
        # username comes from whoever sends a Basic header.
        same_user = secrets.compare_digest(username.encode(), self.username.encode())
        return same_user and cached_check(password, self.password_hash)

    @property
    def shows_default(self) -> bool:
        return bool(self.default_password)

    def set_password(self, raw: str) -> None:
        self.password_hash = make_password(raw)

    def check_password(self, raw: str) -> bool:
        return check_password(raw, self.password_hash)


class LiveRoomManager(Manager):
    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class Room(models.Model):
    class Mode(models.TextChoices):
        GROUP = "group", "Group"
        LECTURE = "lecture", "Lecture"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rooms")
    room_id = models.CharField(max_length=24, unique=True, default=new_object_id, editable=False)
    name = models.CharField(max_length=200)
    owner_ref = models.CharField(max_length=200, blank=True, default="")
    # EnableX clients send owner_ref as a string or a number and read back what
    # they sent: a number is kept in owner_ref as its JSON text.
    owner_ref_is_number = models.BooleanField(default=False)
    settings = models.JSONField(default=dict)
    # EnableX's free-form "data" object and "sip" settings, kept and echoed.
    data = models.JSONField(default=dict, blank=True)
    sip = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A deleted room keeps its row so the recordings of its past sessions stay
    # in the report, the Archive API and the CDR; it is gone from every room list.
    deleted_at = models.DateTimeField(null=True, blank=True)

    # ``objects`` (the default) hides deleted rooms; ``all_objects`` and
    # ``session.room`` still reach them.
    all_objects = Manager()
    objects = LiveRoomManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"])]
        default_manager_name = "objects"

    def __str__(self) -> str:
        return f"{self.name} ({self.room_id})"

    @property
    def auto_recording(self) -> bool:
        return bool(self.settings.get("auto_recording"))

    @property
    def auto_live_recording(self) -> bool:
        return bool((self.settings.get("live_recording") or {}).get("auto_recording"))

    @property
    def chat_only(self) -> bool:
        return bool(self.settings.get("chat_only"))


class Invitation(models.Model):
    """A person named on the Members page. It becomes a membership when an
    account with that username (or email) next logs in, so the page answers
    the same whether or not such an account exists. It lapses after
    ``VALID_FOR``: a name reused long after (a new account given a departed
    person's username or address) does not inherit a forgotten invitation.
    Inviting again renews it."""

    VALID_FOR = timedelta(days=14)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    identifier = models.CharField(max_length=254)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "identifier"], name="unique_invitation"),
        ]
        ordering = ["identifier"]

    def __str__(self) -> str:
        return f"{self.identifier} invited to {self.project}"

    @property
    def expires_at(self) -> datetime:
        return self.created_at + self.VALID_FOR

    @property
    def expired(self) -> bool:
        return timezone.now() >= self.expires_at


class AuditEvent(models.Model):
    """Security-relevant events of a project. Never holds secret values."""

    class Action(models.TextChoices):
        PROJECT_CREATED = "project_created", "Project created"
        APP_KEY_REGENERATED = "app_key_regenerated", "App key regenerated"
        RECORDING_PASSWORD_CHANGED = "recording_password_changed", "Recording password changed"
        MEMBER_INVITED = "member_invited", "Member invited"
        MEMBER_ADDED = "member_added", "Member added"
        MEMBER_ROLE_CHANGED = "member_role_changed", "Member role changed"
        MEMBER_REMOVED = "member_removed", "Member removed"
        ROOM_CREATED = "room_created", "Room created"
        ROOM_CHANGED = "room_changed", "Room changed"
        ROOM_DELETED = "room_deleted", "Room deleted"
        WEBHOOK_CHANGED = "webhook_changed", "Webhook settings changed"
        WEBHOOK_SENT = "webhook_sent", "Webhook event sent by hand"
        DELIVERY_CHANGED = "delivery_changed", "Delivery settings changed"
        DELIVERY_HOST_KEY_TRUSTED = "delivery_host_key_trusted", "Destination key trusted"
        BASIC_AUTH_FAILURES = "basic_auth_failures", "Repeated failed recording logins"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=40, choices=Action.choices)
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["project", "-at"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.project})"
