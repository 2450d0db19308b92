from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import Organization
from peridio_console.accounts.services import api_key_issue
from peridio_console.core.errors import DomainError

COMMAND = Actor.system("manage.py create_api_key")


class Command(BaseCommand):
    help = "Create an API key for a member of an organization; prints only the key."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, metavar="SLUG")
        parser.add_argument("--user", required=True, metavar="USERNAME")
        parser.add_argument("--name", default="", metavar="NAME")

    def handle(self, *args, **options) -> None:
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"No organization with slug {options['org']!r}.")
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user named {options['user']!r}.")
        try:
            _, secret = api_key_issue(
                organization=org, user=user, actor=COMMAND, name=options["name"]
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(secret)
