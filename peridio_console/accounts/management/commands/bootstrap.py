import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from peridio_console.accounts.models import Membership, Organization, Role
from peridio_console.accounts.services import unique_slug

USERNAME = "admin"


class Command(BaseCommand):
    help = "Make sure an admin user and an organization exist; print how to log in."

    def handle(self, *args, **options) -> None:
        password_file = Path(settings.VAR_DIR) / "admin-password"
        users = get_user_model().objects
        user = users.filter(username=USERNAME).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = users.create_superuser(username=USERNAME, email="", password=password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        if not Membership.objects.filter(user=user).exists():
            org = Organization.objects.create(name="Default", slug=unique_slug("default"))
            Membership.objects.create(user=user, organization=org, role=Role.ADMIN)
        url = f"http://127.0.0.1:{settings.PORT}/"
        self.stdout.write(f"Peridio Console: {url}")
        if password_file.exists() and user.check_password(password_file.read_text().strip()):
            self.stdout.write(
                f"Log in as {USERNAME} with password {password_file.read_text().strip()} "
                f"(kept in {password_file})."
            )
        else:
            self.stdout.write(
                f"Log in as {USERNAME} with the password you set "
                f"(reset it with: .venv/bin/python manage.py changepassword {USERNAME})."
            )
