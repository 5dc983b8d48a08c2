from django.db import migrations, models


def first_note(apps, schema_editor):
    apps.get_model("notes", "Note").objects.create(text="written by migrate in build.sh")


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                    ("text", models.CharField(max_length=200))],
        ),
        migrations.RunPython(first_note, migrations.RunPython.noop),
    ]
