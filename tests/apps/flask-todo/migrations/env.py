"""Alembic's environment under Flask-Migrate: the app's engine and models, migrations logged to stderr."""

import logging

from alembic import context
from flask import current_app

logging.basicConfig(format="%(levelname)-5.5s [%(name)s] %(message)s")
logging.getLogger("alembic").setLevel(logging.INFO)

db = current_app.extensions["migrate"].db

with db.engine.connect() as connection:
    context.configure(connection=connection, target_metadata=db.metadata)
    with context.begin_transaction():
        context.run_migrations()
