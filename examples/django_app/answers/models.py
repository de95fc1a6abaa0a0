from django.db import models


class Answer(models.Model):
    """One request's result, written by the callback task as its chunk arrives."""

    job_id = models.CharField(max_length=64)
    custom_id = models.CharField(max_length=64)
    text = models.TextField(blank=True)
    error = models.TextField(blank=True)
    saved_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Callbacks are delivered at least once: the database keeps one row per request whatever runs twice.
        constraints = [models.UniqueConstraint(fields=["job_id", "custom_id"], name="one_answer_per_request")]
        ordering = ["custom_id"]
