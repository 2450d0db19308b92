from django.db import migrations, models
from django.db.models import Count, Exists, Max, OuterRef, Subquery, Sum


def fill_part_totals(apps, schema_editor):
    Binary = apps.get_model("binaries", "Binary")
    BinaryPart = apps.get_model("binaries", "BinaryPart")
    parts = BinaryPart.objects.filter(binary=OuterRef("pk"))

    def total(aggregate):
        return Subquery(parts.order_by().values("binary").annotate(total=aggregate).values("total"))

    Binary.objects.filter(Exists(parts)).update(
        parts_count=total(Count("pk")),
        parts_bytes=total(Sum("size")),
        parts_max_index=total(Max("index")),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("binaries", "0006_one_signature_per_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="binary",
            name="parts_count",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="binary",
            name="parts_bytes",
            field=models.PositiveBigIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="binary",
            name="parts_max_index",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(fill_part_totals, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="binary",
            constraint=models.CheckConstraint(
                condition=models.Q(parts_count__lte=models.F("parts_max_index")),
                name="binary_parts_count_within_max_index",
            ),
        ),
    ]
