"""Budget transactions, inventory, purchase orders, suppliers and vendors.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.inventory import (
    BUDGET_TRANSACTIONS,
    INVENTORY_ITEMS,
    INVENTORY_TRANSACTIONS,
    PURCHASE_ORDER_ITEMS,
    PURCHASE_ORDERS,
    SUPPLIERS,
    VENDORS,
    BudgetTransaction,
    InventoryItem,
    InventoryTransaction,
    PurchaseOrder,
    PurchaseOrderItem,
    Supplier,
    Vendor,
)

budget_transactions = bind_entity(BUDGET_TRANSACTIONS)
items = bind_entity(INVENTORY_ITEMS)
transactions = bind_entity(INVENTORY_TRANSACTIONS)
vendors = bind_entity(VENDORS)
purchase_orders = bind_entity(PURCHASE_ORDERS)
purchase_order_items = bind_entity(PURCHASE_ORDER_ITEMS)
suppliers = bind_entity(SUPPLIERS)

__all__ = [
    "BudgetTransaction",
    "InventoryItem",
    "InventoryTransaction",
    "PurchaseOrder",
    "PurchaseOrderItem",
    "Supplier",
    "Vendor",
    "budget_transactions",
    "items",
    "purchase_order_items",
    "purchase_orders",
    "suppliers",
    "transactions",
    "vendors",
]
