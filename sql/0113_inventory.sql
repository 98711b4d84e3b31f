-- Inventory and budget (operational data).

CREATE TABLE budget_transactions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    category_id       uuid NOT NULL REFERENCES budget_categories (id) ON DELETE RESTRICT,
    amount            numeric(10,2) NOT NULL CHECK (amount >= 0),
    description       text NOT NULL,
    transaction_date  timestamptz NOT NULL,
    reference_id      varchar(255),
    reference_type    varchar(100),
    notes             text,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    created_by        varchar(128),
    updated_by        varchar(128)
);
CREATE INDEX budget_transactions_category_id_idx ON budget_transactions (category_id);

CREATE TABLE inventory_items (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              varchar(255) NOT NULL,
    category          varchar(255) NOT NULL,
    description       text,
    sku               varchar(255) UNIQUE,
    supplier          varchar(255),
    unit_cost         numeric(10,2) CHECK (unit_cost >= 0),
    reorder_level     integer NOT NULL CHECK (reorder_level >= 0),
    reorder_quantity  integer NOT NULL CHECK (reorder_quantity >= 0),
    location          varchar(255),
    notes             text,
    is_active         boolean NOT NULL DEFAULT true,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE inventory_transactions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    inventory_item_id  uuid NOT NULL REFERENCES inventory_items (id) ON DELETE RESTRICT,
    type               varchar(50) NOT NULL CHECK (type IN ('PURCHASE','USAGE','ADJUSTMENT','TRANSFER','RETURN','DISPOSAL')),
    quantity           integer NOT NULL,
    unit_cost          numeric(10,2) CHECK (unit_cost >= 0),
    reason             varchar(255),
    batch_number       varchar(255),
    expiration_date    timestamptz,
    performed_by_id    uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_transactions_inventory_item_id_idx ON inventory_transactions (inventory_item_id);
CREATE INDEX inventory_transactions_performed_by_id_idx ON inventory_transactions (performed_by_id);

CREATE TABLE vendors (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           varchar(255) NOT NULL,
    contact_name   varchar(255),
    email          varchar(255) UNIQUE,
    phone          varchar(255),
    address        text,
    website        varchar(255),
    tax_id         varchar(255),
    payment_terms  text,
    notes          text,
    rating         numeric(3,2) CHECK (rating >= 0 AND rating <= 5),
    is_active      boolean NOT NULL DEFAULT true,
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE purchase_orders (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_number   varchar(255) NOT NULL UNIQUE,
    vendor_id      uuid NOT NULL REFERENCES vendors (id) ON DELETE RESTRICT,
    order_date     timestamptz NOT NULL,
    expected_date  timestamptz,
    received_date  timestamptz,
    subtotal       numeric(12,2) NOT NULL CHECK (subtotal >= 0),
    tax            numeric(12,2) NOT NULL CHECK (tax >= 0),
    shipping       numeric(12,2) NOT NULL CHECK (shipping >= 0),
    total          numeric(12,2) NOT NULL CHECK (total >= 0),
    status         varchar(50) NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','APPROVED','ORDERED','PARTIALLY_RECEIVED','RECEIVED','CANCELLED')),
    notes          text,
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    created_by     varchar(128),
    updated_by     varchar(128)
);
CREATE INDEX purchase_orders_vendor_id_idx ON purchase_orders (vendor_id);

CREATE TABLE purchase_order_items (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    purchase_order_id  uuid NOT NULL REFERENCES purchase_orders (id) ON DELETE RESTRICT,
    inventory_item_id  uuid NOT NULL REFERENCES inventory_items (id) ON DELETE RESTRICT,
    quantity           integer NOT NULL CHECK (quantity >= 1),
    unit_cost          numeric(10,2) NOT NULL CHECK (unit_cost >= 0),
    total_cost         numeric(12,2) NOT NULL CHECK (total_cost >= 0),
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX purchase_order_items_purchase_order_id_idx ON purchase_order_items (purchase_order_id);
CREATE INDEX purchase_order_items_inventory_item_id_idx ON purchase_order_items (inventory_item_id);

CREATE TABLE suppliers (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          varchar(255) NOT NULL,
    contact_name  varchar(255),
    email         varchar(255),
    phone         varchar(50),
    address       text,
    is_active     boolean NOT NULL DEFAULT true,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE, DELETE ON budget_transactions, inventory_items, inventory_transactions, vendors, purchase_orders, purchase_order_items, suppliers TO wxdata_app;
