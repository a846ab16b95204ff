"""AiMetric.price_source: who priced a call (genai-prices, the AI_PRICES override, or nobody).

The rows already there were priced by the hand-written table that genai-prices replaced, and say
so: the column is added with that as its database default (PostgreSQL fills existing rows
without rewriting the table), then the default becomes "" for the rows to come.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("aimetrics", "0004_rollup_job")]

    operations = [
        migrations.AddField(
            model_name="aimetric",
            name="price_source",
            field=models.CharField(
                blank=True,
                db_default="hand-written table",
                default="",
                max_length=40,
                verbose_name="price source",
            ),
        ),
        migrations.AlterField(
            model_name="aimetric",
            name="price_source",
            field=models.CharField(
                blank=True, db_default="", default="", max_length=40, verbose_name="price source"
            ),
        ),
    ]
