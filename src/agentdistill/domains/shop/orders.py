"""The shop's order database: SQLite, built on first use from the committed examples/shop/orders.csv.

The database is a real file (in the run directory, else the temporary folder), rebuilt when the CSV is
newer, so the tools run SQL against it as a shop's would; git holds only the small CSV. The refund and
shipping rules are those of the shop's policy documents (examples/shop/corpus), so a tool's figure and
the passage a search finds agree.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Literal

import agentdistill

CSV_NAME = "orders.csv"
DB_NAME = "shop_orders.sqlite"
CURRENCY = "USD"
PROMISED_DAYS = {"standard": 5, "express": 2}  # shipping.md, "Express delivery"
RESTOCKING_FEE = 0.10  # returns.md, "Restocking fee for opened electronics"
ZONE_PRICE = {"domestic": (4.99, 1.00), "europe": (9.99, 2.50), "worldwide": (19.99, 5.00)}  # (first kg, each extra)
EXPRESS_SURCHARGE = 8.00

_COLUMNS = ("order_id TEXT PRIMARY KEY, customer TEXT, placed TEXT, status TEXT, delivered TEXT, item TEXT, "
            "category TEXT, quantity INTEGER, item_total REAL, shipping REAL, shipping_method TEXT, country TEXT, "
            "zone TEXT")
_build_lock = threading.Lock()


def orders_csv() -> Path:
    """The committed CSV: beside the source tree of an editable install, or under the working directory."""
    candidates = [Path(agentdistill.__file__).resolve().parents[2] / "examples" / "shop" / CSV_NAME,
                  Path.cwd() / "examples" / "shop" / CSV_NAME]
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(f"examples/shop/{CSV_NAME} was not found (looked in {', '.join(map(str, candidates))})")


def build(csv_path: Path, db_path: Path) -> Path:
    """Write the SQLite database of ``csv_path`` to ``db_path`` (atomically: a reader never sees half of it)."""
    with csv_path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_name(f".{db_path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.execute(f"CREATE TABLE orders ({_COLUMNS})")
        db.executemany("INSERT INTO orders VALUES (:order_id, :customer, :placed, :status, :delivered, :item, "
                       ":category, :quantity, :item_total, :shipping, :shipping_method, :country, :zone)", rows)
    os.replace(tmp, db_path)
    return db_path


class OrderBook:
    """The tools over one database file, built on the first query."""

    def __init__(self, run_dir: Path | None = None, csv_path: Path | None = None):
        self.csv_path = csv_path
        folder = Path(run_dir) if run_dir is not None and Path(run_dir).exists() else Path(tempfile.gettempdir())
        self.db_path = folder / DB_NAME

    def _connect(self) -> sqlite3.Connection:
        with _build_lock:
            source = self.csv_path or orders_csv()
            if not self.db_path.exists() or self.db_path.stat().st_mtime < source.stat().st_mtime:
                build(source, self.db_path)
        db = sqlite3.connect(self.db_path)
        db.row_factory = sqlite3.Row
        return db

    def _order(self, order_id: str) -> sqlite3.Row:
        key = order_id.strip().upper()
        with self._connect() as db:
            row = db.execute("SELECT * FROM orders WHERE order_id = ?", (key,)).fetchone()
        if row is None:
            raise ValueError(f"no order {order_id!r}; order numbers look like \"A1024\"")
        return row

    def get_order(self, order_id: str) -> str:
        """Look up an order: its status, items, total and delivery.

        Args:
            order_id: The order number, e.g. "A1024" or "A1007".
        """
        o = self._order(order_id)
        status = f"delivered on {o['delivered']}" if o["status"] == "delivered" else o["status"]
        return (f"Order {o['order_id']} placed {o['placed']}: {o['quantity']} x {o['item']}, items USD "
                f"{o['item_total']:.2f}, shipping USD {o['shipping']:.2f} ({o['shipping_method']} to {o['country']}); "
                f"status {status}.")

    def refund_amount(self, order_id: str,
                      reason: Literal["damaged", "wrong_item", "changed_mind", "late_delivery"]) -> str:
        """Work out the refund for an order by the returns policy.

        Args:
            order_id: The order number, e.g. "A1024" or "A1007".
            reason: Why the customer wants money back.
        """
        o = self._order(order_id)
        items, shipping = float(o["item_total"]), float(o["shipping"])
        head = f"Refund for order {o['order_id']} ({reason})"
        if o["status"] == "cancelled":
            return f"{head}: USD 0.00; the order was cancelled and already refunded in full."
        if o["status"] == "processing":
            return f"{head}: USD {items + shipping:.2f}; the order is still processing, so cancelling it refunds " \
                   "the items and the shipping."
        if reason in ("damaged", "wrong_item"):
            return f"{head}: USD {items + shipping:.2f}, the items (USD {items:.2f}) and the shipping in full."
        if reason == "late_delivery":
            if o["status"] != "delivered":
                return f"{head}: USD 0.00; the order is {o['status']} and not yet delivered."
            from datetime import date

            days = (date.fromisoformat(o["delivered"]) - date.fromisoformat(o["placed"])).days
            promised = PROMISED_DAYS[o["shipping_method"]]
            if days > promised:
                return f"{head}: USD {shipping:.2f}, the shipping, since delivery took {days} days against " \
                       f"{promised} promised."
            return f"{head}: USD 0.00; delivery took {days} days, within the {promised} days promised."
        if o["category"] == "clearance":
            return f"{head}: USD 0.00; clearance items are final sale and cannot be returned for a change of mind."
        if o["category"] == "electronics":
            fee = round(items * RESTOCKING_FEE, 2)
            return f"{head}: USD {items - fee:.2f}, the items less a 10 percent restocking fee of USD {fee:.2f}; " \
                   "shipping is not refunded."
        return f"{head}: USD {items:.2f}, the items; shipping is not refunded."


def shipping_cost(weight_kg: float, zone: Literal["domestic", "europe", "worldwide"],
                  method: Literal["standard", "express"] = "standard") -> str:
    """Work out the shipping price of a parcel.

    Args:
        weight_kg: The parcel's weight in kilograms, e.g. 2.5.
        zone: Where it goes: domestic (the Netherlands), europe or worldwide.
        method: standard or express.
    """
    if not 0 < weight_kg <= 30:
        raise ValueError(f"weight_kg must be above 0 and at most 30, got {weight_kg}")
    first, extra = ZONE_PRICE[zone]
    extra_kg = max(0.0, weight_kg - 1.0)
    price = first + extra * extra_kg + (EXPRESS_SURCHARGE if method == "express" else 0.0)
    return (f"Shipping {weight_kg:g} kg {method} to {zone}: USD {price:.2f} (USD {first:.2f} for the first kg, "
            f"USD {extra:.2f} per extra kg{', USD 8.00 express' if method == 'express' else ''}); promised within "
            f"{PROMISED_DAYS[method]} days.")
