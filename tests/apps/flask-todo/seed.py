"""One-off: `shipyard run todo -- python seed.py` adds the sample todos (exits 1 if there are some)."""

import sys

from app import Todo, app, db

with app.app_context():
    if db.session.query(Todo).count():
        print("already seeded", file=sys.stderr)
        sys.exit(1)
    db.session.add_all(Todo(title=t) for t in ("milk", "eggs", "bread"))
    db.session.commit()
    print("seeded 3 todos")
