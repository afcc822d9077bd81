"""Forms of the notification pages: the history filter and the channel forms per kind."""

from __future__ import annotations

from django import forms

from .kinds import KINDS, SUBSCRIBABLE, URL_KINDS
from .models import Notification, NotificationChannel

# The kinds the console writes (kinds.py); the history filter offers only these.
NOTIFICATION_KINDS = list(KINDS.items())


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


# --- channels ---------------------------------------------------------------------------

URL_HELP = {
    NotificationChannel.Kind.WEBHOOK: "The receiver's https:// address. It is stored encrypted "
    "and shown afterwards only as scheme and host.",
    NotificationChannel.Kind.SLACK: "The incoming-webhook URL Slack gave you "
    "(https://hooks.slack.com/services/…). Stored encrypted; shown only as its host.",
    NotificationChannel.Kind.APPRISE: "An apprise service URL, e.g. msteams://…, discord://…, "
    "pagerduty://…, opsgenie://… (docs/notifications.md lists the accepted services). "
    "Stored encrypted; shown only as its scheme and host.",
}


class ChannelForm(forms.Form):
    """A channel of one kind. The URL (a credential) is never rendered back into the page:
    on edit, leave it empty to keep the stored one. The service validates every field
    again and names the field in its errors."""

    name = forms.CharField(label="Name", max_length=100)
    url = forms.CharField(
        label="URL",
        required=False,
        max_length=2000,
        strip=True,
        # A password input: the URL is a secret, never shown back (render_value=False).
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}
        ),
    )
    email_recipients = forms.CharField(
        label="Extra e-mail recipients",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One address per line, besides the organization's owners (and the project's "
        "owners for project events), who always receive it.",
    )
    event_kinds = forms.MultipleChoiceField(
        label="Events",
        required=False,
        choices=list(SUBSCRIBABLE.items()),
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event.",
    )
    is_active = forms.BooleanField(label="Active", required=False, initial=True)

    def __init__(self, *args, kind: str, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        if kind in URL_KINDS:
            self.fields["url"].help_text = URL_HELP[kind] + (
                " Leave empty to keep the stored URL." if editing else ""
            )
            self.fields["url"].required = not editing
        else:
            del self.fields["url"]
        if kind != NotificationChannel.Kind.EMAIL:
            del self.fields["email_recipients"]

    def apply_errors(self, exc) -> None:
        """A service's ``ValidationError`` onto the fields it names (others: the form)."""
        for field, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
            for error in errors:
                self.add_error(field if field in self.fields else None, error)
