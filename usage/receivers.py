"""Usage's answers to other apps' signals (connected in ``UsageConfig.ready``)."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from orgs.models import Organization

from .daily import daily_zone_follow


@receiver(post_save, sender=Organization, dispatch_uid="usage.daily_zone_follows_billing")
def daily_rollups_follow_billing_timezone(sender, instance, created, raw=False, **kwargs):
    """A billing timezone change rebuilds the organization's daily rollups in the new zone,
    in the transaction of the save (the console's form, the Django admin, a service): the
    dashboard's days are then whole rows again. Until then, and if it ever did not happen,
    the figures stay exact (``usage.daily``: no daily row is read for days of another zone)."""
    if created or raw:
        return
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and "billing_timezone" not in update_fields:
        return
    daily_zone_follow(organization_id=instance.pk, billing_timezone=instance.billing_timezone)
