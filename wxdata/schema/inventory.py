"""Inventory and budget: budget transactions, clinic supplies and their movements, purchase
orders and their lines, suppliers and vendors (operational data, no student data)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from wxdata.schema.base import Authored, Versioned
from wxdata.schema.contacts import EMAIL
from wxdata.schema.spec import (
    DataClass,
    col,
    created_at,
    entity,
    pk,
    row,
)

G = DataClass.GENERAL


@row
class BudgetTransaction(Authored):
    """A spending transaction against a budget category."""

    id: UUID = pk()
    category_id: UUID = col(G, references="budget_categories")
    amount: Decimal = col(G, sql="numeric(10,2)", minimum=0)
    description: str = col(G, sql="text")
    transaction_date: datetime = col(G)
    reference_id: str | None = col(G, max_length=255)
    reference_type: str | None = col(G, max_length=100)
    notes: str | None = col(G, sql="text")


BUDGET_TRANSACTIONS = entity(BudgetTransaction, table="budget_transactions")


@row
class InventoryItem(Versioned):
    """A stocked clinic supply with its reorder thresholds."""

    id: UUID = pk()
    name: str = col(G, max_length=255)
    category: str = col(G, max_length=255)
    description: str | None = col(G, sql="text")
    sku: str | None = col(G, max_length=255, unique=True)
    supplier: str | None = col(G, max_length=255)
    unit_cost: Decimal | None = col(G, sql="numeric(10,2)", minimum=0)
    reorder_level: int = col(G, minimum=0)
    reorder_quantity: int = col(G, minimum=0)
    location: str | None = col(G, max_length=255)
    notes: str | None = col(G, sql="text")
    is_active: bool = col(G, has_default=True)


INVENTORY_ITEMS = entity(InventoryItem, table="inventory_items")

INVENTORY_TRANSACTION_TYPES = ("PURCHASE", "USAGE", "ADJUSTMENT", "TRANSFER", "RETURN", "DISPOSAL")


@row
class InventoryTransaction:
    """A stock movement of an inventory item (append-only ledger)."""

    id: UUID = pk()
    inventory_item_id: UUID = col(G, references="inventory_items")
    type: str = col(G, max_length=50, choices=INVENTORY_TRANSACTION_TYPES)
    quantity: int = col(G)
    unit_cost: Decimal | None = col(G, sql="numeric(10,2)", minimum=0)
    reason: str | None = col(G, max_length=255)
    batch_number: str | None = col(G, max_length=255)
    expiration_date: datetime | None = col(G)
    performed_by_id: UUID = col(G, references="users")
    notes: str | None = col(G, sql="text")
    created_at: datetime = created_at()


INVENTORY_TRANSACTIONS = entity(InventoryTransaction, table="inventory_transactions")

PO_STATUSES = ("PENDING", "APPROVED", "ORDERED", "PARTIALLY_RECEIVED", "RECEIVED", "CANCELLED")


@row
class Vendor(Versioned):
    """A vendor purchase orders are placed with."""

    id: UUID = pk()
    name: str = col(G, max_length=255)
    contact_name: str | None = col(G, max_length=255)
    email: str | None = col(G, max_length=255, unique=True, pattern=EMAIL)
    phone: str | None = col(G, max_length=255)
    address: str | None = col(G, sql="text")
    website: str | None = col(G, max_length=255)
    tax_id: str | None = col(G, max_length=255)
    payment_terms: str | None = col(G, sql="text")
    notes: str | None = col(G, sql="text")
    rating: Decimal | None = col(G, sql="numeric(3,2)", minimum=0, maximum=5)
    is_active: bool = col(G, has_default=True)


VENDORS = entity(Vendor, table="vendors")


@row
class PurchaseOrder(Authored):
    """A purchase order to a vendor."""

    id: UUID = pk()
    order_number: str = col(G, max_length=255, unique=True)
    vendor_id: UUID = col(G, references="vendors")
    order_date: datetime = col(G)
    expected_date: datetime | None = col(G)
    received_date: datetime | None = col(G)
    subtotal: Decimal = col(G, sql="numeric(12,2)", minimum=0)
    tax: Decimal = col(G, sql="numeric(12,2)", minimum=0)
    shipping: Decimal = col(G, sql="numeric(12,2)", minimum=0)
    total: Decimal = col(G, sql="numeric(12,2)", minimum=0)
    status: str = col(G, max_length=50, choices=PO_STATUSES, has_default=True)
    notes: str | None = col(G, sql="text")


PURCHASE_ORDERS = entity(PurchaseOrder, table="purchase_orders")


@row
class PurchaseOrderItem(Versioned):
    """A line of a purchase order."""

    id: UUID = pk()
    purchase_order_id: UUID = col(G, references="purchase_orders")
    inventory_item_id: UUID = col(G, references="inventory_items")
    quantity: int = col(G, minimum=1)
    unit_cost: Decimal = col(G, sql="numeric(10,2)", minimum=0)
    total_cost: Decimal = col(G, sql="numeric(12,2)", minimum=0)


PURCHASE_ORDER_ITEMS = entity(PurchaseOrderItem, table="purchase_order_items")


@row
class Supplier(Versioned):
    """A supplier of clinic goods."""

    id: UUID = pk()
    name: str = col(G, max_length=255)
    contact_name: str | None = col(G, max_length=255)
    email: str | None = col(G, max_length=255, pattern=EMAIL)
    phone: str | None = col(G, max_length=50)
    address: str | None = col(G, sql="text")
    is_active: bool = col(G, has_default=True)


SUPPLIERS = entity(Supplier, table="suppliers")
