"""Re-encryption of every EncryptedSecretField to the newest key, in batches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from .crypto import DecryptionError, get_key_ring
from .fields import encrypted_fields


@dataclass
class ReencryptReport:
    moved: int = 0
    batches: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    stopped_early: bool = False


def _stale(model, fld, newest_prefix: str):
    return model._default_manager.exclude(**{f"{fld.attname}__startswith": newest_prefix}).exclude(
        **{fld.attname: ""}
    )


def count_on_older_keys() -> int:
    """How many stored secrets are not sealed with the newest key."""
    prefix = get_key_ring().newest_prefix
    return sum(_stale(model, fld, prefix).count() for model, fld in encrypted_fields())


def reencrypt_all(
    *,
    batch_size: int = 500,
    max_batches: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ReencryptReport:
    """Re-seal stale secrets, one committed batch at a time, in primary-key order."""
    ring = get_key_ring()
    prefix = ring.newest_prefix
    report = ReencryptReport()
    for model, fld in encrypted_fields():
        label = f"{model._meta.label_lower}.{fld.name}"
        total = _stale(model, fld, prefix).count()
        done, last_pk = 0, None
        while True:
            if max_batches is not None and report.batches >= max_batches:
                report.stopped_early = True
                return report
            with transaction.atomic():
                rows = _stale(model, fld, prefix).order_by("pk")
                if last_pk is not None:
                    rows = rows.filter(pk__gt=last_pk)
                # Lock the batch so a concurrent rotation cannot be overwritten.
                batch = list(rows.select_for_update()[:batch_size])
                if not batch:
                    break
                for row in batch:
                    last_pk = row.pk
                    aad = fld.associated_data(row)
                    try:
                        plaintext = ring.decrypt(getattr(row, fld.attname), aad=aad)
                    except DecryptionError as exc:
                        report.failures.append((f"{label} pk={row.pk}", str(exc)))
                        continue
                    new_token = ring.encrypt(plaintext, aad=aad)
                    del plaintext
                    model._default_manager.filter(pk=row.pk).update(**{fld.attname: new_token})
                    done += 1
                    report.moved += 1
            report.batches += 1
            if progress:
                progress(label, done, total)
    return report
