from __future__ import annotations

from django import forms

from .models import Project


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name"]
        help_texts = {"name": "A name your team recognises, e.g. “Telehealth production”."}
