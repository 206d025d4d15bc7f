"""Create a user with a role and print an API token (demo, benchmarks, operations)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.enums import Role
from marketplace.models import User
from marketplace.services.accounts import role_grant, token_create, user_create


class Command(BaseCommand):
    help = "Create (or reuse) a user with a requester/worker role and print a new API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument(
            "--role",
            choices=Role.values,
            action="append",
            required=True,
            help="requester or worker; repeat for both",
        )
        parser.add_argument("--password", default=None, help="Set a password for web login too.")
        parser.add_argument("--token-only", action="store_true", help="Print only the key.")

    def handle(self, *args: Any, **opts: Any) -> None:
        email = opts["email"].strip().lower()
        user = User.objects.filter(email=email).first()
        if user is None:
            try:
                user = user_create(email=email, password=opts["password"], roles=opts["role"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        else:
            for role in opts["role"]:
                role_grant(user=user, role=role)
            if opts["password"]:
                user.set_password(opts["password"])
                user.save(update_fields=["password"])
        _, key = token_create(user=user, name="create_api_user")
        if opts["token_only"]:
            self.stdout.write(key)
        else:
            self.stdout.write(f"email={email} roles={','.join(opts['role'])} token={key}")
