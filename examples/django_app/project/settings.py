"""Settings of the example project. Every URL and key comes from the environment; nothing secret is written here."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-set-DJANGO_SECRET_KEY-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver").split(",")

INSTALLED_APPS = ["answers"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "project.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH") or BASE_DIR / "db.sqlite3",
        # Web processes read while several worker processes write. WAL lets reads go on during a write; IMMEDIATE
        # takes the write lock when a transaction begins, so a second writer waits (up to `timeout`) instead of
        # failing with "database is locked" when its read would turn into a write.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
    }
}

# Celery, the Django way: celery.py loads every CELERY_* name here as a Celery setting (namespace="CELERY"), so
# CELERY_BATCHLINE_ALLOWED_CALLBACKS is batchline's `allowed_callbacks`.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL")  # unset: batchline's embedded default, no server at all
CELERY_BATCHLINE_ALLOWED_CALLBACKS = ["answers.save_results"]

# The model the view asks; "test" needs no key. Provider keys and base URLs (OPENAI_API_KEY, OPENAI_BASE_URL, ...)
# are read by the workers from their own environment, never from here.
BATCHLINE_EXAMPLE_MODEL = os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test")
