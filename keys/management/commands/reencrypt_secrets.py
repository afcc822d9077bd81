"""Move every stored secret to the newest key of the ring, in batches.

Safe to interrupt and re-run: each batch commits on its own and rows already on the
newest version are skipped, so a second run continues where the first stopped.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from keys.reencrypt import count_on_older_keys, reencrypt_all


class Command(BaseCommand):
    help = "Re-encrypt every secret with the newest key in FIELD_ENCRYPTION_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument(
            "--max-batches",
            type=int,
            default=None,
            help="Stop after this many batches (re-run to continue).",
        )

    def handle(self, *args, batch_size: int, max_batches: int | None, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")

        def progress(label: str, done: int, total: int) -> None:
            self.stdout.write(f"{label}: {done}/{total} re-encrypted")

        report = reencrypt_all(batch_size=batch_size, max_batches=max_batches, progress=progress)
        for label, error in report.failures:
            self.stderr.write(f"could not re-encrypt {label}: {error}")
        remaining = count_on_older_keys()
        self.stdout.write(
            f"Re-encrypted {report.moved} secret(s) in {report.batches} batch(es). "
            f"{remaining} secret(s) remain on older keys."
        )
        if report.failures:
            raise CommandError(
                f"{len(report.failures)} secret(s) could not be decrypted; they stay on their old key."
            )
