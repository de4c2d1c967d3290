"""The shop pack: customer support for a small online shop. Its tools query a real SQLite order database
(orders.py) and search the shop's policy documents with the generic document search; it brings no
offline teacher of its own, so ``teacher.kind: rule`` uses the generic one (synth/schema_teacher.py)."""

from __future__ import annotations

from pathlib import Path

from agentdistill.config import RunConfig
from agentdistill.domains import DomainPack
from agentdistill.domains.shop.orders import OrderBook, shipping_cost
from agentdistill.tools.documents import DocumentSearch, warm_up
from agentdistill.tools.spec import Tool

TOPIC = "the shop's orders, returns, shipping and warranty"
SEARCH = "search_policies"
# The shop prices in US dollars (orders.CURRENCY), which the generic spellings already cover ("USD", "$",
# "dollars"); declared so that the pack states its currency rather than relying on that.
CURRENCIES = {"usd": "USD", "$": "USD", "dollar": "USD", "dollars": "USD"}

PERSONAS = [
    {"name": "customer", "asks_about": "own orders, refunds, returns and delivery times",
     "style": "informal first person, gives the order number"},
    {"name": "support agent", "asks_about": "policy details, refund amounts and shipping prices for customers",
     "style": "precise"},
    {"name": "gift buyer", "asks_about": "gift cards, delivery to another country and returns of gifts",
     "style": "chatty, sometimes a story"},
]


def tools(cfg: RunConfig, run_dir: Path | None) -> list[Tool]:
    book = OrderBook(run_dir)
    search = DocumentSearch(run_dir, cfg).tool(SEARCH, "Search the shop's policies (returns, refunds, shipping, "
                                                       "warranty, payments) for passages about a topic.")
    return [search, *(Tool.from_function(f) for f in (book.get_order, book.refund_amount, shipping_cost))]


PACK = DomainPack(name="shop", tools=tools, topic=TOPIC, personas=PERSONAS, currencies=CURRENCIES,
                  warm_up=lambda registry: warm_up(registry, SEARCH), example="shop")
