"""Writes on API keys. Every place where plaintext passes is marked.

Views, the admin and tasks call these functions, never ``APIKey.objects.create``.
"""

from __future__ import annotations

import hmac
import re
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from orgs.audit import audit_log
from orgs.models import Organization, Project, ServiceAccount
from platformadmin.redaction import redact, scrub

from .crypto import DecryptionError, KeyRingError, fingerprint
from .fields import seal, unseal
from .models import APIKey, APIKeyEvent

# Expected shapes of a pasted key, per kind (OpenAI) or provider.
_BODY = r"[A-Za-z0-9_\-]{16,256}"
KEY_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    APIKey.Kind.PROJECT: (
        re.compile(rf"^sk-(?!svcacct-|admin-)(?:proj-)?{_BODY}$"),
        "a project key starts with 'sk-proj-' followed by at least 16 letters, digits, '-' or '_'",
    ),
    APIKey.Kind.SERVICE_ACCOUNT: (
        re.compile(rf"^sk-svcacct-{_BODY}$"),
        "a service-account key starts with 'sk-svcacct-' followed by at least 16 letters, digits, '-' or '_'",
    ),
    APIKey.Kind.ADMIN: (
        re.compile(rf"^sk-admin-{_BODY}$"),
        "an admin key starts with 'sk-admin-' followed by at least 16 letters, digits, '-' or '_'",
    ),
}
AZURE_FORMAT = (
    re.compile(r"^[A-Za-z0-9]{32,100}$"),
    "an Azure OpenAI key is 32 to 100 letters and digits, as shown under 'Keys and Endpoint'",
)
# Any provider's token, but a token: printable ASCII, no whitespace, and long enough that a
# word or a placeholder ("hello-not-a-key") is refused (real tokens are 20+ characters).
COMPATIBLE_MIN_LENGTH, COMPATIBLE_MAX_LENGTH = 20, 512
COMPATIBLE_FORMAT = (
    re.compile(rf"^[\x21-\x7e]{{{COMPATIBLE_MIN_LENGTH},{COMPATIBLE_MAX_LENGTH}}}$"),
    f"an OpenAI-compatible key is {COMPATIBLE_MIN_LENGTH} to {COMPATIBLE_MAX_LENGTH} printable "
    "characters with no spaces; paste the whole token your provider issued",
)


class SecretUnavailable(Exception):
    """The stored secret cannot be used (missing key ring version or tampered data)."""


@sensitive_variables("secret")
def validate_key_format(*, secret: str, kind: str, provider: str) -> None:
    """Raise ValidationError on ``secret`` when the value does not fit the kind/provider.

    The message says what was expected and never echoes the value.
    """
    if not secret or secret != secret.strip():
        raise ValidationError(
            {"secret": "Paste the key without leading or trailing spaces or line breaks."}
        )
    if provider == APIKey.Provider.AZURE:
        pattern, expected = AZURE_FORMAT
    elif provider == APIKey.Provider.COMPATIBLE:
        pattern, expected = COMPATIBLE_FORMAT
    else:
        pattern, expected = KEY_FORMATS[kind]
    if not pattern.match(secret):
        raise ValidationError({"secret": f"This does not look like the right key: {expected}."})


@sensitive_variables("secret")
def make_hint(secret: str) -> str:
    """``sk-proj-…abcd``: the known prefix and the last four characters."""
    match = re.match(r"^(sk-(?:proj-|svcacct-|admin-)?)", secret)
    prefix = match.group(1) if match else ""
    return f"{prefix}…{secret[-4:]}"


@sensitive_variables("secret")
def _store_secret(api_key: APIKey, secret: str) -> None:
    """Seal ``secret`` onto ``api_key`` with its hint and fingerprint (not saved)."""
    api_key.fingerprint = fingerprint(secret)
    api_key.hint = make_hint(secret)
    api_key.secret_stored = True  # a key known only from OpenAI's listing gets its value here
    try:
        seal(api_key, "secret", secret)  # plaintext crosses into ciphertext here
    except KeyRingError as exc:
        raise ValidationError({"secret": f"The console cannot encrypt secrets: {exc}"}) from exc


def _check_duplicate(api_key: APIKey) -> None:
    """Refuse a key this organization already stores.

    Scoped to the organization: a console-wide check would tell the owner of one
    organization whether another organization stores a given key.
    """
    clash = APIKey.objects.filter(
        organization_id=api_key.organization_id,
        fingerprint=api_key.fingerprint,
    ).exclude(pk=api_key.pk)
    if clash.exists():
        raise ValidationError(
            {
                "secret": "This key is already stored in this organization (same fingerprint). "
                "Open the existing key instead of adding it twice."
            }
        )


@sensitive_variables("secret")
def _refuse_current_value(api_key: APIKey, secret: str) -> None:
    """A rotation to the value in use would restart the rotation clock on an old secret."""
    if api_key.fingerprint and hmac.compare_digest(api_key.fingerprint, fingerprint(secret)):
        raise ValidationError(
            {
                "secret": "This is the key's current value. Paste the newly issued key "
                "(create it at OpenAI first, then paste it here)."
            }
        )


@sensitive_variables("secret")
@transaction.atomic
def api_key_create_unaudited(
    *,
    organization: Organization,
    name: str,
    secret: str,
    kind: str = APIKey.Kind.PROJECT,
    project: Project | None = None,
    service_account: ServiceAccount | None = None,
    provider: str = APIKey.Provider.OPENAI,
    permissions: str = APIKey.Permissions.ALL,
    base_url: str = "",
    azure_endpoint: str = "",
    azure_api_version: str = "",
    openai_key_id: str = "",
    expires_at=None,
    created_by=None,
) -> APIKey:
    """Check, encrypt and store a new key, without a history row or an audit event (seeds,
    tests; people go through ``api_key_add``). Raises ValidationError naming the field."""
    validate_key_format(secret=secret, kind=kind, provider=provider)
    api_key = APIKey(
        organization=organization,
        project=project,
        service_account=service_account,
        name=name,
        kind=kind,
        provider=provider,
        permissions=permissions,
        base_url=base_url,
        azure_endpoint=azure_endpoint,
        azure_api_version=azure_api_version,
        openai_key_id=openai_key_id,
        expires_at=expires_at,
        created_by=created_by,
    )
    _validate_relations(api_key)
    _store_secret(api_key, secret)
    _check_duplicate(api_key)
    api_key.full_clean(exclude=["fingerprint"])
    try:
        api_key.save()
    except IntegrityError as exc:  # a concurrent insert of the same key
        raise ValidationError(
            {"secret": "This key is already stored in this organization."}
        ) from exc
    return api_key


def _validate_relations(api_key: APIKey) -> None:
    errors: dict[str, str] = {}
    if api_key.kind == APIKey.Kind.ADMIN and api_key.project_id:
        errors["project"] = "Admin keys belong to the organization: leave the project empty."
    if api_key.kind != APIKey.Kind.ADMIN and not api_key.project_id:
        errors["project"] = "Choose the project this key belongs to."
    if api_key.project_id and api_key.project.organization_id != api_key.organization_id:
        errors["project"] = "The project belongs to another organization."
    if api_key.kind == APIKey.Kind.SERVICE_ACCOUNT and not api_key.service_account_id:
        errors["service_account"] = "Choose the service account that owns this key."
    if api_key.service_account_id and api_key.service_account.project_id != api_key.project_id:
        errors["service_account"] = "The service account belongs to another project."
    if api_key.provider == APIKey.Provider.AZURE:
        if not api_key.azure_endpoint:
            errors["azure_endpoint"] = (
                "Azure keys need the resource endpoint, https://<name>.openai.azure.com."
            )
        if not api_key.azure_api_version:
            errors["azure_api_version"] = "Azure keys need an API version, e.g. 2024-10-21."
    if api_key.provider == APIKey.Provider.COMPATIBLE and not api_key.base_url:
        errors["base_url"] = (
            "OpenAI-compatible keys need the base URL, e.g. https://llm.example.com/v1."
        )
    if errors:
        raise ValidationError(errors)


@sensitive_variables("secret")
@transaction.atomic
def api_key_replace_secret(*, api_key: APIKey, secret: str, rotated: bool = True) -> APIKey:
    """Store a new value for an existing key (rotation, or an admin correction)."""
    validate_key_format(secret=secret, kind=api_key.kind, provider=api_key.provider)
    _refuse_current_value(api_key, secret)
    _store_secret(api_key, secret)
    _check_duplicate(api_key)
    if rotated:
        api_key.last_rotated_at = timezone.now()
    try:
        api_key.save()
    except IntegrityError as exc:
        raise ValidationError(
            {"secret": "This key is already stored in this organization."}
        ) from exc
    return api_key


def api_key_mark_used(*, api_key: APIKey, when=None) -> bool:
    """Move ``last_used_at`` forward to ``when`` (default now).

    A conditional update, so concurrent calls never move it back, and at most one write
    a minute per key, so a busy key does not turn every call into a row update.
    """
    when = when or timezone.now()
    if api_key.last_used_at is not None and api_key.last_used_at >= when - timedelta(minutes=1):
        return False  # already recent on the loaded row: spare the UPDATE
    changed = APIKey.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=when - timedelta(minutes=1)),
        pk=api_key.pk,
    ).update(last_used_at=when)
    if changed:
        api_key.last_used_at = when
    return bool(changed)


def api_key_secret_for_call(api_key: APIKey) -> str:
    """Plaintext of the key, unaudited: for the call about to be made (and inside the
    audited ``api_key_reveal``). Never log the result."""
    if not api_key.secret_stored:
        raise SecretUnavailable(
            f"Key {api_key.hint} is known from OpenAI's listing only: its secret is not stored "
            "here. Paste its value on the key page (rotate) to use it from the console."
        )
    try:
        return unseal(api_key, "secret")
    except (DecryptionError, KeyRingError) as exc:
        raise SecretUnavailable(
            f"The stored secret of key {api_key.hint} cannot be decrypted ({exc}). "
            "Check FIELD_ENCRYPTION_KEYS, or rotate the key by pasting its value again."
        ) from exc


# --- Lifecycle from the console: every step audited and kept in the key's history ---


def _record_history(
    api_key: APIKey, action: str, *, actor=None, old_hint: str = "", note: str = ""
) -> None:
    APIKeyEvent.objects.create(
        api_key=api_key,
        action=action,
        occurred_at=timezone.now(),
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        actor_label=actor.get_username() if getattr(actor, "is_authenticated", False) else "system",
        old_hint=old_hint,
        new_hint=api_key.hint,
        note=redact(note)[:255],  # a typed reason may carry a pasted key
    )


def audit_key(action: str, api_key: APIKey, *, actor=None, request=None, detail=None) -> None:
    """An audit event on a key: scoped to its organization and project, the hint first in
    ``detail`` (never the secret). Views and the admin write theirs through it too."""
    audit_log(
        action=action,
        actor=actor,
        organization=api_key.organization,
        project=api_key.project,
        target=api_key,
        request=request,
        detail={"hint": api_key.hint, **(detail or {})},
    )


@sensitive_variables("secret", "fields")
@transaction.atomic
def api_key_add(*, actor, request=None, **fields) -> APIKey:
    """A key added by a person (console, admin): ``api_key_create_unaudited`` plus its
    history row and the audit event. Seeds and tests use the unaudited one directly."""
    api_key = api_key_create_unaudited(created_by=actor, **fields)
    _record_history(api_key, "created", actor=actor)
    audit_key(
        "key.create",
        api_key,
        actor=actor,
        request=request,
        detail={
            "kind": api_key.kind,
            "provider": api_key.provider,
            "permissions": api_key.permissions,
        },
    )
    return api_key


@sensitive_variables("secret")
@transaction.atomic
def api_key_rotate(*, api_key: APIKey, secret: str, actor, request=None) -> APIKey:
    """Replace the value with a newly issued one; the old hint stays in the history."""
    api_key = APIKey.objects.select_for_update().get(pk=api_key.pk)
    if not api_key.is_active:
        raise ValidationError(
            {
                "secret": f"This key is {api_key.get_status_display().lower()}; "
                "add a new key instead of rotating it."
            }
        )
    old_hint = api_key.hint
    api_key_replace_secret(api_key=api_key, secret=secret, rotated=True)
    _record_history(api_key, "rotated", actor=actor, old_hint=old_hint)
    audit_key("key.rotate", api_key, actor=actor, request=request, detail={"old_hint": old_hint})
    return api_key


@transaction.atomic
def api_key_revoke(*, api_key: APIKey, actor, request=None, reason: str = "") -> APIKey:
    """Mark the key revoked (the row stays for the record; nothing can use it again).

    The client layer refuses any key whose status is not active.
    """
    api_key = APIKey.objects.select_for_update().get(pk=api_key.pk)
    if api_key.status == APIKey.Status.REVOKED:
        return api_key
    api_key.status = APIKey.Status.REVOKED
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["status", "revoked_at", "updated_at"])
    _record_history(api_key, "revoked", actor=actor, note=reason)
    audit_key("key.revoke", api_key, actor=actor, request=request, detail={"reason": reason[:255]})
    return api_key


@transaction.atomic
def api_key_reveal(*, api_key: APIKey, actor, request=None) -> str:
    """Plaintext for an owner who re-entered their password (checked by the caller).

    Audited before the value leaves this function; never log the result.
    """
    if not api_key.is_active:
        raise ValidationError(
            {
                "password": f"This key is {api_key.get_status_display().lower()}; "
                "its value is no longer shown."
            }
        )
    secret = api_key_secret_for_call(api_key)  # plaintext from here to the response
    _record_history(api_key, "revealed", actor=actor)
    audit_key("key.reveal", api_key, actor=actor, request=request)
    return secret


@sensitive_variables("secret", "secrets")
@transaction.atomic
def api_key_record_test(
    *, api_key: APIKey, ok: bool, request_id: str | None, message: str, actor, request=None
) -> None:
    """History and audit for a Test connection (the call itself is the client layer's).

    The message and request id come from the upstream, which may echo the key: both are
    scrubbed of this key's value (any encoding) and of key shapes before they are
    stored, since audit rows are append-only and could never be cleaned afterwards.
    """
    try:
        secrets = [api_key_secret_for_call(api_key)]  # plaintext: only to scrub it out below
    except SecretUnavailable:
        secrets = []  # nothing decryptable: the shape patterns still apply
    message = scrub(message, secrets)
    request_id = scrub(request_id, secrets) or None
    secrets.clear()
    _record_history(
        api_key,
        "tested",
        actor=actor,
        note=f"{'ok' if ok else 'failed'}; request id {request_id or '-'}",
    )
    audit_key(
        "key.test",
        api_key,
        actor=actor,
        request=request,
        detail={"ok": ok, "request_id": request_id or "", "message": message[:500]},
    )


# --- The Admin API sync (platformadmin/sync/pull.py): keys as OpenAI lists them ---------
# Only the fields OpenAI owns are written, and only when they differ, so a pull with
# nothing changed upstream writes no row. Audit rows carry ``upstream: True``.


def _upstream_fingerprint(openai_key_id: str) -> str:
    # A key known from the listing only has no value to fingerprint; its OpenAI id stands
    # in, keyed the same way, so the per-organization uniqueness still holds.
    return fingerprint(f"openai-key-id:{openai_key_id}")


@transaction.atomic
def api_key_import_upstream(
    *,
    organization: Organization,
    project: Project,
    name: str,
    openai_key_id: str,
    redacted_value: str,
    kind: str,
    service_account: ServiceAccount | None = None,
    created_at=None,
    last_used_at=None,
    expires_at=None,
    actor=None,
    now=None,
) -> APIKey:
    """A key that exists only upstream (made in OpenAI's dashboard): "known, secret not
    stored". Its hint is OpenAI's redacted value; it can never be used from here."""
    now = now or timezone.now()
    api_key = APIKey(
        organization=organization,
        project=project,
        service_account=service_account,
        name=(name or openai_key_id)[:200],
        kind=kind,
        hint=redact(redacted_value or "")[:40] or "sk-…",
        fingerprint=_upstream_fingerprint(openai_key_id),
        secret="",
        secret_stored=False,
        openai_key_id=openai_key_id,
        upstream_synced_at=now,
        last_used_at=last_used_at,
        expires_at=expires_at,
    )
    _validate_relations(api_key)
    api_key.full_clean(exclude=["fingerprint", "secret"])
    api_key.save()
    if created_at is not None:  # auto_now_add would say "when the console first saw it"
        APIKey.objects.filter(pk=api_key.pk).update(created_at=created_at)
        api_key.created_at = created_at
    _record_history(api_key, "created", actor=actor, note="found at OpenAI; secret not stored")
    audit_key(
        "key.import_upstream",
        api_key,
        actor=actor,
        detail={"upstream": True, "openai_key_id": openai_key_id, "kind": kind},
    )
    return api_key


@transaction.atomic
def api_key_update_upstream(*, api_key: APIKey, values: dict, now=None) -> list[str]:
    """Set the fields OpenAI owns (``values``: field name -> value, e.g. ``expires_at``,
    ``last_used_at``, ``openai_key_id``, ``service_account_id``, a not-stored key's
    ``hint``). Returns the fields changed; writes nothing when none differs."""
    changed = [name for name, value in values.items() if getattr(api_key, name) != value]
    if not changed:
        return []
    for name in changed:
        setattr(api_key, name, values[name])
    api_key.upstream_synced_at = now or timezone.now()
    api_key.save(update_fields=[*changed, "upstream_synced_at", "updated_at"])
    return changed


@transaction.atomic
def api_key_mark_deleted_upstream(*, api_key: APIKey, actor=None, now=None) -> bool:
    """OpenAI no longer lists this key: it stops being usable here (the client layer
    refuses any key that is not active). Only an active key changes; returns whether."""
    api_key = APIKey.objects.select_for_update().get(pk=api_key.pk)
    if api_key.status != APIKey.Status.ACTIVE:
        return False
    api_key.status = APIKey.Status.DELETED_UPSTREAM
    api_key.upstream_synced_at = now or timezone.now()
    api_key.save(update_fields=["status", "upstream_synced_at", "updated_at"])
    _record_history(api_key, "revoked", actor=actor, note="deleted at OpenAI (seen by the sync)")
    audit_key(
        "key.deleted_upstream",
        api_key,
        actor=actor,
        detail={"upstream": True, "openai_key_id": api_key.openai_key_id},
    )
    return True


@sensitive_variables("secret")
@transaction.atomic
def organization_admin_key_store(
    *, organization: Organization, secret: str, base_url: str = "", actor, request=None
) -> APIKey:
    """Store (or replace) the organization's admin key: encrypted, hint only, audited; a
    replaced key is revoked in the same transaction, so there is always one admin key."""
    previous = list(
        APIKey.objects.select_for_update().filter(
            organization=organization, kind=APIKey.Kind.ADMIN, status=APIKey.Status.ACTIVE
        )
    )
    api_key = api_key_add(
        actor=actor,
        request=request,
        organization=organization,
        name="Admin API key",
        secret=secret,  # plaintext crosses into ciphertext inside api_key_add
        kind=APIKey.Kind.ADMIN,
        base_url=base_url,
    )
    for old in previous:
        api_key_revoke(
            api_key=old, actor=actor, request=request, reason="replaced by a new admin key"
        )
    return api_key


_REDACTED = re.compile(r"^(?P<head>.*?)(?:…|\.\.\.|\*{3,})(?P<tail>[^…*.]*)$")


@sensitive_variables("secret")
def api_key_matches_redacted(*, api_key: APIKey, redacted_value: str) -> bool:
    """Whether a stored key is the one OpenAI lists with ``redacted_value`` (its visible
    head and tail), so the sync links it instead of importing a second copy."""
    match = _REDACTED.match(redacted_value or "")
    if not match or len(match["tail"]) < 4 or not api_key.secret_stored:
        return False
    if not api_key.hint.endswith(match["tail"][-4:]):  # the hint keeps the last four: no decrypt
        return False
    try:
        secret = api_key_secret_for_call(api_key)  # plaintext, compared and dropped here
    except SecretUnavailable:
        return False
    return secret.startswith(match["head"]) and secret.endswith(match["tail"])


@transaction.atomic
def api_key_record_upstream_delete(
    *, api_key: APIKey, actor, request=None, already_gone: bool = False
) -> APIKey:
    """A key revoked here was deleted at OpenAI by a push (or was already gone there):
    the row stays revoked for the record; the audit says so, marked upstream."""
    api_key = APIKey.objects.select_for_update().get(pk=api_key.pk)
    api_key.upstream_synced_at = timezone.now()
    api_key.save(update_fields=["upstream_synced_at", "updated_at"])
    audit_key(
        "key.delete_upstream",
        api_key,
        actor=actor,
        request=request,
        detail={
            "upstream": "push",
            "openai_key_id": api_key.openai_key_id,
            "already_gone": already_gone,
        },
    )
    return api_key


# --- Automated rotation of service-account keys (platformadmin/sync/rotation.py) --------
# One rule for "current": a service account's current key is its ACTIVE key. The new key
# of a rotation is stored not active (revoked, no revoked_at) until it is promoted, and the
# promotion swaps both statuses in one transaction: never two current keys, never none.


@sensitive_variables("secret")
@transaction.atomic
def api_key_store_rotation_pending(
    *, previous: APIKey, secret: str, openai_key_id: str, now=None
) -> APIKey:
    """The new key of a rotation, sealed at once (OpenAI shows its value only once), but
    not current: no call uses it until ``api_key_rotation_promote``."""
    now = now or timezone.now()
    api_key = api_key_create_unaudited(
        organization=previous.organization,
        name=previous.name,
        secret=secret,  # plaintext crosses into ciphertext here
        kind=previous.kind,
        project=previous.project,
        service_account=previous.service_account,
        provider=previous.provider,
        permissions=previous.permissions,
        base_url=previous.base_url,
        openai_key_id=openai_key_id,
    )
    api_key.status = APIKey.Status.REVOKED  # pending: not current until promoted
    api_key.upstream_synced_at = now
    api_key.save(update_fields=["status", "upstream_synced_at", "updated_at"])
    _record_history(
        api_key, "created", note="new key of an automated rotation; current once promoted"
    )
    audit_key(
        "key.rotation_store",
        api_key,
        detail={"upstream": True, "openai_key_id": openai_key_id, "replaces": previous.hint},
    )
    return api_key


@transaction.atomic
def api_key_rotation_promote(
    *, previous: APIKey, pending: APIKey, grace_until, actor=None, now=None
) -> APIKey:
    """Make the rotation's new key the current one and the previous key not current, in
    one transaction (both rows locked). The previous key keeps working at OpenAI until
    ``grace_until``, when the rotation deletes it there."""
    now = now or timezone.now()
    locked = APIKey.objects.select_for_update().filter(pk__in=[previous.pk, pending.pk])
    rows = {k.pk: k for k in locked}
    previous, pending = rows[previous.pk], rows[pending.pk]
    if pending.status == APIKey.Status.ACTIVE and previous.status != APIKey.Status.ACTIVE:
        return pending  # already promoted (a resumed run)
    pending.status = APIKey.Status.ACTIVE
    pending.last_rotated_at = now
    pending.save(update_fields=["status", "last_rotated_at", "updated_at"])
    if previous.status == APIKey.Status.ACTIVE:
        previous.status = APIKey.Status.REVOKED
        previous.revoked_at = now
        previous.save(update_fields=["status", "revoked_at", "updated_at"])
    note = f"superseded by {pending.hint}; works at OpenAI until {grace_until:%Y-%m-%d %H:%M} UTC"
    _record_history(previous, "revoked", actor=actor, note=note)
    _record_history(pending, "rotated", actor=actor, old_hint=previous.hint, note="automated")
    audit_key(
        "key.rotate",
        pending,
        actor=actor,
        detail={
            "old_hint": previous.hint,
            "automated": True,
            "upstream": True,
            "grace_until": grace_until.isoformat(),
        },
    )
    return pending


@transaction.atomic
def api_key_rotation_retire(*, api_key: APIKey, reason: str, actor=None, now=None) -> bool:
    """A key the rotation deleted at OpenAI (the previous key after its grace, or a new key
    abandoned by a failed rotation): deleted upstream here too. Never the current key."""
    api_key = APIKey.objects.select_for_update().get(pk=api_key.pk)
    if api_key.status in (APIKey.Status.ACTIVE, APIKey.Status.DELETED_UPSTREAM):
        return False
    api_key.status = APIKey.Status.DELETED_UPSTREAM
    api_key.upstream_synced_at = now or timezone.now()
    api_key.save(update_fields=["status", "upstream_synced_at", "updated_at"])
    _record_history(api_key, "revoked", actor=actor, note=reason[:255])
    audit_key(
        "key.deleted_upstream",
        api_key,
        actor=actor,
        detail={"upstream": True, "openai_key_id": api_key.openai_key_id, "reason": reason},
    )
    return True
