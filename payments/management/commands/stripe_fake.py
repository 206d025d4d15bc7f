"""``manage.py stripe_fake``: serve the project's Stripe fake on loopback for the demo and Celery.

Point the other processes at it with ``STRIPE_API_BASE=http://127.0.0.1:12111``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from payments.testing.stripe_fake import StripeFake, make_server


class Command(BaseCommand):
    help = "Serve a stateful Stripe fake (the endpoints Crowdmarket uses) on 127.0.0.1."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=12111)
        parser.add_argument(
            "--webhook-url",
            default="",
            help="POST signed events here after the demo pages /pay/<session> and /onboard/<account>",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        server = make_server(
            StripeFake(),
            port=options["port"],
            webhook_url=options["webhook_url"],
            webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
        )
        self.stdout.write(f"Stripe fake on http://127.0.0.1:{server.server_address[1]} (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
