"""A production-style settings file that only allows the author's own domain."""

SECRET_KEY = "not-a-secret-only-a-test-app"
DEBUG = False
ALLOWED_HOSTS = ["www.example.com"]
ROOT_URLCONF = "shop.urls"
INSTALLED_APPS = ["django.contrib.staticfiles"]
STATIC_URL = "static/"
STATIC_ROOT = "staticfiles"
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
