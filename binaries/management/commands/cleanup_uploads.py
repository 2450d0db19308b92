from django.core.management.base import BaseCommand

from binaries.janitor import clean_abandoned_uploads


class Command(BaseCommand):
    help = "Abort multipart uploads and remove part files of long-abandoned uploadable binaries."

    def handle(self, *args, **options) -> None:
        cleaned = clean_abandoned_uploads()
        for binary in cleaned:
            self.stdout.write(f"Cleaned {binary.prn}")
        self.stdout.write(f"{len(cleaned)} abandoned upload(s) cleaned.")
