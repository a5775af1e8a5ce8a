"""The user service: GET /api/users, GET /api/users/{id}, POST /api/users {name, email}."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webapp import App, HTTPError, Request, serve

app = App("user")
SCHEMA = "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, email TEXT);"
SEED = [("INSERT INTO users (name, email) VALUES (?, ?)", (name, f"{name.lower()}@example.com"))
        for name in ("Alice", "Bob", "Carol")]  # fmt: skip


@app.route("GET", "/api/users")
def list_users(_request: Request) -> tuple[int, dict[str, Any]]:
    return 200, {"items": app.query("SELECT * FROM users ORDER BY id")}


@app.route("GET", r"/api/users/(\d+)")
def get_user(request: Request) -> tuple[int, dict[str, Any]]:
    rows = app.query("SELECT * FROM users WHERE id = ?", request.params)
    if not rows:
        raise HTTPError(404, f"user {request.params[0]} not found")
    return 200, rows[0]


@app.route("POST", "/api/users")
def create_user(request: Request) -> tuple[int, dict[str, Any]]:
    body = request.body if isinstance(request.body, dict) else {}
    name, email = body.get("name"), body.get("email")
    if not isinstance(name, str) or not name or not isinstance(email, str) or "@" not in email:
        raise HTTPError(400, 'a user needs "name" and an "email" with an @')
    user_id = app.insert("INSERT INTO users (name, email) VALUES (?, ?)", (name, email))
    return 201, {"id": user_id, "name": name, "email": email}


def setup(data_dir: Path) -> None:
    app.open_db(data_dir, SCHEMA, SEED)


if __name__ == "__main__":
    serve(app, setup)
