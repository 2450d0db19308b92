from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("binaries", "0011_binaryevent_append_only"),
    ]

    operations = [
        migrations.AddField(
            model_name="binary",
            name="revision",
            field=models.PositiveIntegerField(default=1, editable=False),
        ),
    ]
