from hello import app  # noqa: F401  (gunicorn serves wsgi:app)
