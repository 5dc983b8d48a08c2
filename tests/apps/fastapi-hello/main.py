import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def index() -> dict[str, str]:
    return {"message": "Hello from FastAPI", "server": os.environ.get("SERVER_SOFTWARE", "")}
