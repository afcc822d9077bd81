"""Run the bundled OpenAI simulator (demo and manual testing): `manage.py openai_simulator`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from platformadmin.openai.simulator import OpenAISimulator


class Command(BaseCommand):
    help = (
        "Serve an OpenAI-compatible simulator (Responses, Chat Completions, Embeddings, models, "
        "faults) on a local port."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1)."
        )
        parser.add_argument("--port", type=int, default=8765, help="Port (default 8765).")
        parser.add_argument(
            "--delta-delay",
            type=float,
            default=0.05,
            help="Seconds between streamed text deltas (default 0.05).",
        )
        parser.add_argument(
            "--slow-seconds",
            type=float,
            default=90.0,
            help="Delay of a fault-slow reply (default 90, beyond the 60 s timeout).",
        )
        parser.add_argument(
            "--retry-after-ms",
            type=int,
            default=1000,
            help="retry-after-ms sent with 429 and 500 faults (default 1000).",
        )
        parser.add_argument("--verbose", action="store_true", help="Log every request.")

    def handle(
        self,
        *args,
        host: str,
        port: int,
        delta_delay: float,
        slow_seconds: float,
        retry_after_ms: int,
        verbose: bool,
        **options,
    ):
        sim = OpenAISimulator(
            host,
            port,
            delta_delay=delta_delay,
            slow_seconds=slow_seconds,
            retry_after_ms=retry_after_ms,
            quiet=not verbose,
        )
        self.stdout.write(f"OpenAI simulator on {sim.base_url} (faults: see docs/playground.md)")
        try:
            sim.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            sim.httpd.server_close()
