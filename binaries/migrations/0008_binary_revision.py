from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("binaries", "0007_binary_part_totals"),
    ]

    operations = [
        migrations.AddField(
            model_name="binary",
            name="revision",
            field=models.PositiveIntegerField(default=1, editable=False),
        ),
    ]
