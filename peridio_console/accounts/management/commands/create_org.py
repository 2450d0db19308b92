from django.core.management.base import BaseCommand, CommandError

from peridio_console.accounts.services import organization_create
from peridio_console.core.errors import DomainError


class Command(BaseCommand):
    help = "Create an organization with an admin member (created when missing)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--admin", required=True, metavar="USERNAME")
        parser.add_argument("--password", help="password for a new (or existing) admin user")

    def handle(self, *args, **options) -> None:
        try:
            org, user, new_password = organization_create(
                name=options["name"], admin_username=options["admin"], password=options["password"]
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Created organization {org.name} (slug {org.slug}, {org.prn}).")
        self.stdout.write(f"{user.get_username()} is its admin.")
        if new_password:
            self.stdout.write(f"New user {user.get_username()}'s password: {new_password}")
