"""A todo API like the usual Flask tutorials: Flask-SQLAlchemy models, Flask-Migrate, DATABASE_URL.

The schema comes from migrations/ (`release: flask db upgrade` in the Procfile); jobs posted to /jobs
are done by the `worker:` process (worker.py).
"""

import os

import psycopg
from flask import Flask, jsonify, request
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

app = Flask(__name__)
url = os.environ.get("DATABASE_URL", "sqlite:///local.db")
if url.startswith("postgres://"):  # what apps written for Heroku do
    url = url.replace("postgres://", "postgresql://", 1)
app.config["SQLALCHEMY_DATABASE_URI"] = url
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True}
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class Todo(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    done = db.Column(db.Boolean, nullable=False, default=False)

    def as_dict(self):
        return {"id": self.id, "title": self.title, "done": self.done}


class Job(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    payload = db.Column(db.String(200), nullable=False)
    result = db.Column(db.String(200))  # set by the worker

    def as_dict(self):
        return {"id": self.id, "payload": self.payload, "result": self.result}


@app.get("/todos")
def list_todos():
    return jsonify([t.as_dict() for t in Todo.query.order_by(Todo.id)])


@app.post("/todos")
def create_todo():
    todo = Todo(title=request.get_json()["title"])
    db.session.add(todo)
    db.session.commit()
    return jsonify(todo.as_dict()), 201


@app.patch("/todos/<int:todo_id>")
def toggle_todo(todo_id):
    todo = db.get_or_404(Todo, todo_id)
    todo.done = not todo.done
    db.session.commit()
    return jsonify(todo.as_dict())


@app.delete("/todos/<int:todo_id>")
def delete_todo(todo_id):
    db.session.delete(db.get_or_404(Todo, todo_id))
    db.session.commit()
    return "", 204


@app.post("/jobs")
def create_job():
    job = Job(payload=request.get_json()["payload"])
    db.session.add(job)
    db.session.commit()
    return jsonify(job.as_dict()), 201


@app.get("/jobs/<int:job_id>")
def show_job(job_id):
    return jsonify(db.get_or_404(Job, job_id).as_dict())


@app.get("/db-info")
def db_info():
    row = db.session.execute(text("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).one()
    return jsonify({"ssl": row[0], "tls": row[1], "sslmode": os.environ.get("PGSSLMODE")})


@app.get("/connect")
def connect_elsewhere():
    """Try another database with this app's own credentials (the server must refuse)."""
    try:
        psycopg.connect(dbname=request.args["db"]).close()
        return "connected\n"
    except psycopg.OperationalError as exc:
        return f"refused: {str(exc).strip().splitlines()[-1]}\n", 403
