from __future__ import annotations

from django import forms

from .models import Project


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name"]
        help_texts = {"name": "A name your team recognises, e.g. “Telehealth production”."}


class RecordingPasswordForm(forms.Form):
    """Reset of the project's recording password (Recording Access Control)."""

    MIN_LENGTH = 10

    account_password = forms.CharField(
        label="Your account password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Authorises the change.",
    )
    new_password = forms.CharField(
        label="New recording password",
        strip=False,
        min_length=MIN_LENGTH,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=f"At least {MIN_LENGTH} characters.",
        error_messages={
            "min_length": f"The recording password must be at least {MIN_LENGTH} characters long."
        },
    )
    confirm_password = forms.CharField(
        label="Confirm new password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_account_password(self) -> str:
        password = self.cleaned_data["account_password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your account password.")
        return password

    def clean_new_password(self) -> str:
        from django.contrib.auth.password_validation import validate_password

        password = self.cleaned_data["new_password"]
        validate_password(password, user=None)
        return password

    def clean(self):
        cleaned = super().clean()
        new, confirm = cleaned.get("new_password"), cleaned.get("confirm_password")
        if new and confirm is not None and new != confirm:
            self.add_error("confirm_password", "The two passwords do not match.")
        return cleaned


class AddMemberForm(forms.Form):
    """Names a person by username or email. The answer never says whether
    such an account exists (that would let any project owner list the
    portal's accounts): the person is invited and joins at their next login."""

    user = forms.CharField(label="Username or email", max_length=254)
    role = forms.ChoiceField(choices=[])

    def __init__(self, *args, project, **kwargs):
        from .models import Role

        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["role"].choices = Role.choices
        self.fields["role"].initial = Role.VIEWER

    def clean_user(self) -> str:
        from django.db.models import Q

        value = self.cleaned_data["user"].strip()
        if not value:
            raise forms.ValidationError("Give a username or email.")
        # Members are listed on the page already: naming one again says nothing new.
        members = self.project.memberships.filter(
            Q(user__username=value) | Q(user__email__iexact=value)
        )
        if members.exists():
            raise forms.ValidationError(f"{value} is already a member.")
        return value


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=[])

    def __init__(self, *args, **kwargs):
        from .models import Role

        super().__init__(*args, **kwargs)
        self.fields["role"].choices = Role.choices
