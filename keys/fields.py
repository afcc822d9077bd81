"""A model field that holds only ciphertext, and the two calls that cross the line.

The attribute on a model instance is always the sealed ``vN:...`` string, so
``repr``, ``str``, serializers, the admin and logs can never see plaintext by
accident. Plaintext exists only between :func:`seal`'s argument and
:func:`unseal`'s return value, at the moment of use.
"""

from __future__ import annotations

from django.apps import apps
from django.db import models
from django.views.decorators.debug import sensitive_variables

from .crypto import get_key_ring


class EncryptedSecretField(models.TextField):
    """Ciphertext of a secret, bound to the row through ``aad_field`` (a UUID)."""

    description = "An AES-256-GCM sealed secret (ciphertext only)"

    def __init__(self, *args, aad_field: str = "public_id", **kwargs):
        self.aad_field = aad_field
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.aad_field != "public_id":
            kwargs["aad_field"] = self.aad_field
        for key, default in (("editable", False), ("blank", True), ("default", "")):
            if kwargs.get(key) == default:
                kwargs.pop(key)
        return name, path, args, kwargs

    def associated_data(self, instance: models.Model) -> str:
        meta = instance._meta
        return f"{meta.app_label}.{meta.model_name}.{self.name}:{getattr(instance, self.aad_field)}"


def _field(instance: models.Model, field_name: str) -> EncryptedSecretField:
    field = instance._meta.get_field(field_name)
    if not isinstance(field, EncryptedSecretField):
        raise TypeError(f"{field_name} is not an EncryptedSecretField")
    return field


@sensitive_variables("plaintext")
def seal(instance: models.Model, field_name: str, plaintext: str) -> None:
    """Encrypt ``plaintext`` with the newest key and store it on ``instance`` (unsaved)."""
    field = _field(instance, field_name)
    setattr(
        instance,
        field.attname,
        get_key_ring().encrypt(plaintext, aad=field.associated_data(instance)),
    )


def unseal(instance: models.Model, field_name: str) -> str:
    """Decrypt the secret stored on ``instance``. Raises crypto.DecryptionError."""
    field = _field(instance, field_name)
    return get_key_ring().decrypt(
        getattr(instance, field.attname), aad=field.associated_data(instance)
    )


def encrypted_fields() -> list[tuple[type[models.Model], EncryptedSecretField]]:
    """Every (model, field) pair holding secrets, for re-encryption."""
    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedSecretField)
    ]
