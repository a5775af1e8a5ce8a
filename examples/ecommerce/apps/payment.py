"""The payment service: POST /api/payments {orderRef, amount} charges in CURRENCY.

CURRENCY comes from a ConfigMap (default "EUR"). When PAYMENT_API_KEY is set (from a Secret),
a request must carry `Authorization: Bearer <key>` or gets 401. Amounts over MAX_AMOUNT
(default 10000) are declined with 402.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from webapp import App, HTTPError, Request, serve

app = App("payment")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS payments "
    "(id INTEGER PRIMARY KEY, orderRef TEXT, amount REAL, currency TEXT, status TEXT);"
)
CURRENCY = os.environ.get("CURRENCY") or "EUR"
API_KEY = os.environ.get("PAYMENT_API_KEY") or ""
MAX_AMOUNT = float(os.environ.get("MAX_AMOUNT") or 10000)


@app.route("POST", "/api/payments")
def pay(request: Request) -> tuple[int, dict[str, Any]]:
    if API_KEY and request.headers.get("authorization") != f"Bearer {API_KEY}":
        raise HTTPError(401, "a payment needs Authorization: Bearer <PAYMENT_API_KEY>")
    body = request.body if isinstance(request.body, dict) else {}
    amount = body.get("amount")
    if not isinstance(amount, int | float) or isinstance(amount, bool) or amount <= 0:
        raise HTTPError(400, 'a payment needs a positive "amount"')
    status = "approved" if amount <= MAX_AMOUNT else "declined"
    ref = str(body.get("orderRef") or "")
    payment_id = app.insert(
        "INSERT INTO payments (orderRef, amount, currency, status) VALUES (?, ?, ?, ?)",
        (ref, amount, CURRENCY, status),
    )
    answer = {"id": payment_id, "orderRef": ref, "amount": amount, "currency": CURRENCY,
              "status": status}  # fmt: skip
    return (201 if status == "approved" else 402), answer


@app.route("GET", "/api/payments")
def list_payments(_request: Request) -> tuple[int, dict[str, Any]]:
    return 200, {"items": app.query("SELECT * FROM payments ORDER BY id")}


def setup(data_dir: Path) -> None:
    app.open_db(data_dir, SCHEMA, ())


if __name__ == "__main__":
    serve(app, setup)
