"""The order service: POST /api/orders {userId, productId, quantity}, GET /api/orders.

An order asks the user and product services whether the user and product exist, then the
payment service to charge price × quantity, all by Kubernetes service name through the mesh
(`http://user:8080`: in a pod network the sidecar captures the connection; in the host
network urllib sends it to the sidecar that `http_proxy` names). USER_URL, PRODUCT_URL
and PAYMENT_URL override those base URLs (to run the service without a mesh).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from webapp import App, HTTPError, Request, call, serve

app = App("order")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, ref TEXT, userId INTEGER, "
    "productId INTEGER, quantity INTEGER, amount REAL, currency TEXT, status TEXT);"
)
USER_URL = os.environ.get("USER_URL") or "http://user:8080"
PRODUCT_URL = os.environ.get("PRODUCT_URL") or "http://product:8080"
PAYMENT_URL = os.environ.get("PAYMENT_URL") or "http://payment:8080"
API_KEY = os.environ.get("PAYMENT_API_KEY") or ""


def positive_int(body: dict[str, Any], key: str) -> int:
    value = body.get(key, 1 if key == "quantity" else None)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise HTTPError(400, f'an order needs "{key}", a positive integer')
    return value


def lookup(url: str, headers: dict[str, str], what: str) -> dict[str, Any]:
    """GET what an order refers to; one that does not exist makes the order a 400."""
    try:
        return call(url, headers=headers)
    except HTTPError as exc:
        if exc.status == 404:
            raise HTTPError(400, f"unknown {what}") from exc
        raise


@app.route("POST", "/api/orders")
def create_order(request: Request) -> tuple[int, dict[str, Any]]:
    body = request.body if isinstance(request.body, dict) else {}
    user_id, product_id = positive_int(body, "userId"), positive_int(body, "productId")
    quantity = positive_int(body, "quantity")
    headers = request.forwarded()
    user = lookup(f"{USER_URL}/api/users/{user_id}", headers, f"user {user_id}")
    product = lookup(f"{PRODUCT_URL}/api/products/{product_id}", headers, f"product {product_id}")
    ref = uuid.uuid4().hex[:12]
    amount = round(float(product["price"]) * quantity, 2)
    if API_KEY:
        headers["authorization"] = f"Bearer {API_KEY}"
    try:
        payment = call(f"{PAYMENT_URL}/api/payments", body={"orderRef": ref, "amount": amount},
                       headers=headers)  # fmt: skip
        status, currency = "paid", payment["currency"]
    except HTTPError as exc:
        if exc.status != 402:
            raise
        payment, status, currency = {"error": str(exc)}, "declined", ""
    order_id = app.insert(
        "INSERT INTO orders (ref, userId, productId, quantity, amount, currency, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (ref, user_id, product_id, quantity, amount, currency, status),
    )
    order = {"id": order_id, "ref": ref, "userId": user_id, "productId": product_id,
             "quantity": quantity, "amount": amount, "currency": currency, "status": status,
             "user": user, "product": product, "payment": payment}  # fmt: skip
    return (201 if status == "paid" else 402), order


@app.route("GET", "/api/orders")
def list_orders(_request: Request) -> tuple[int, dict[str, Any]]:
    return 200, {"items": app.query("SELECT * FROM orders ORDER BY id")}


def setup(data_dir: Path) -> None:
    app.open_db(data_dir, SCHEMA, ())


if __name__ == "__main__":
    serve(app, setup)
