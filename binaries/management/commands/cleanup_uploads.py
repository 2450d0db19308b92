from django.core.management.base import BaseCommand

from binaries.janitor import clean_abandoned_uploads, remove_orphans


class Command(BaseCommand):
    help = (
        "Abort multipart uploads and remove part files of long-abandoned uploadable binaries, "
        "and remove stored bytes that no binary owns."
    )

    def handle(self, *args, **options) -> None:
        cleaned = clean_abandoned_uploads()
        for binary in cleaned:
            self.stdout.write(f"Cleaned {binary.prn}")
        self.stdout.write(f"{len(cleaned)} abandoned upload(s) cleaned.")
        orphans = remove_orphans()
        for key in orphans:
            self.stdout.write(f"Removed {key}")
        self.stdout.write(f"{len(orphans)} orphaned file(s) or upload(s) removed.")
