# A signing key signs a binary once. Earlier releases accepted the same key's signature twice;
# those repeats (same binary, same key) are removed here, the first one of each kept, so the
# constraint can be added. A binary's signed status does not change: its first signature stays.

from django.db import migrations, models


def drop_repeated_signatures(apps, schema_editor):
    BinarySignature = apps.get_model("binaries", "BinarySignature")
    seen = set()
    repeats = []
    for pk, binary_id, key_id in BinarySignature.objects.order_by("created_at", "id").values_list(
        "pk", "binary_id", "signing_key_id"
    ):
        if (binary_id, key_id) in seen:
            repeats.append(pk)
        seen.add((binary_id, key_id))
    BinarySignature.objects.filter(pk__in=repeats).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("binaries", "0005_binary_target_listing_index"),
    ]

    operations = [
        migrations.RunPython(drop_repeated_signatures, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="binarysignature",
            constraint=models.UniqueConstraint(
                fields=("binary", "signing_key"), name="one_signature_per_key"
            ),
        ),
    ]
