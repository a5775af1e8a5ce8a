"""The product service: GET /api/products, GET /api/products/{id}.

v1 and v2 are this same file run with VERSION=v1 or VERSION=v2; v2 adds each product's
"rating" and a "badge": "new", so a canary split is visible in every answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webapp import VERSION, App, HTTPError, Request, serve

app = App("product")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS products "
    "(id INTEGER PRIMARY KEY, name TEXT, price REAL, stock INTEGER, rating REAL);"
)
SEED = [("INSERT INTO products (name, price, stock, rating) VALUES (?, ?, ?, ?)", row)
        for row in (("Coffee mug", 8.5, 120, 4.6), ("Notebook", 3.2, 500, 4.1),
                    ("Headphones", 59.0, 35, 4.4), ("Backpack", 42.0, 60, 4.8))]  # fmt: skip


def present(row: dict[str, Any]) -> dict[str, Any]:
    """A product as this version shows it."""
    rating = row.pop("rating")
    return {**row, "rating": rating, "badge": "new"} if VERSION == "v2" else row


@app.route("GET", "/api/products")
def list_products(_request: Request) -> tuple[int, dict[str, Any]]:
    return 200, {"items": [present(row) for row in app.query("SELECT * FROM products ORDER BY id")]}


@app.route("GET", r"/api/products/(\d+)")
def get_product(request: Request) -> tuple[int, dict[str, Any]]:
    rows = app.query("SELECT * FROM products WHERE id = ?", request.params)
    if not rows:
        raise HTTPError(404, f"product {request.params[0]} not found")
    return 200, present(rows[0])


def setup(data_dir: Path) -> None:
    app.open_db(data_dir, SCHEMA, SEED)


if __name__ == "__main__":
    serve(app, setup)
