"""Settings as Render's Django guide has them: production settings keyed on Render's own RENDER and
RENDER_EXTERNAL_HOSTNAME (set because the repo has a render.yaml), the database from DATABASE_URL
(dj-database-url), static files collected by build.sh and served by WhiteNoise."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SECRET_KEY", default="insecure-only-for-this-sample")
DEBUG = "RENDER" not in os.environ
ALLOWED_HOSTS = []
RENDER_EXTERNAL_HOSTNAME = os.environ.get("RENDER_EXTERNAL_HOSTNAME")
if RENDER_EXTERNAL_HOSTNAME:
    ALLOWED_HOSTS.append(RENDER_EXTERNAL_HOSTNAME)

INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.staticfiles", "notes"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "whitenoise.middleware.WhiteNoiseMiddleware"]
ROOT_URLCONF = "mysite.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
WSGI_APPLICATION = "mysite.wsgi.application"
DATABASES = {
    "default": dj_database_url.config(default="postgresql://postgres:postgres@localhost:5432/mysite",
                                      conn_max_age=600),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"
if not DEBUG:
    # Without RENDER, collectstatic in build.sh fails: STATIC_ROOT is unset.
    STATIC_ROOT = BASE_DIR / "staticfiles"
    STORAGES = {"staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}
USE_TZ = True
