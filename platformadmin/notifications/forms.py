"""Forms of the notification pages: the history filter and the channel forms per kind."""

from __future__ import annotations

from django import forms

from .models import Notification, NotificationChannel

# The kinds the console writes (issue 11); a history filter offers only these.
NOTIFICATION_KINDS = [
    ("budget.threshold", "Budget threshold reached"),
    ("budget.forecast", "Budget forecast over the amount"),
    ("key.rotation", "Key rotation reminder"),
    ("channel.test", "Channel test"),
]


class HistoryFilterForm(forms.Form):
    """Filters of the notification history; every field optional, each error names the
    field and the fix."""

    channel = forms.ModelChoiceField(
        queryset=NotificationChannel.objects.none(),
        label="Channel",
        required=False,
        empty_label="All channels",
        to_field_name="public_id",
        error_messages={
            "invalid_choice": "That channel is not one of this organization's: choose one "
            "from the list."
        },
    )
    kind = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=[("", "All kinds"), *NOTIFICATION_KINDS],
        error_messages={"invalid_choice": "Unknown kind '%(value)s': choose one from the list."},
    )
    state = forms.ChoiceField(
        label="State",
        required=False,
        choices=[("", "Any state"), *Notification.State.choices],
        error_messages={"invalid_choice": "Unknown state '%(value)s': choose one from the list."},
    )
    since = forms.DateField(
        label="From (UTC)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter the start date as YYYY-MM-DD."},
    )
    until = forms.DateField(
        label="To (UTC)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter the end date as YYYY-MM-DD."},
    )

    def __init__(self, *args, channels, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel"].queryset = channels

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] > cleaned["until"]:
            self.add_error("until", "The end date is before the start date: swap them.")
        return cleaned
