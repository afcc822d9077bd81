"""Forms of the usage pages."""

from __future__ import annotations

from django import forms


class IngestionTokenForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text="Which application will use it, e.g. 'billing-service production'.",
    )
