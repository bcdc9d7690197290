-- StoreHub hub database, version 1.
-- The ledger is the books: append-only, hash-chained, never updated or deleted.
-- p_* tables are projections of the ledger (rebuildable with `storehub replay`); each row keeps
-- the entity as JSON in `doc` and exposes the columns reports and the manager page query on.
-- Secrets (PIN hashes, device password hashes) are not in the ledger, which leaves the store.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE ledger (
    seq       INTEGER PRIMARY KEY,
    epoch     INTEGER NOT NULL,
    at        TEXT NOT NULL,
    type      TEXT NOT NULL,
    actor     TEXT,
    device    TEXT,
    cmd       TEXT,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
);
CREATE INDEX ledger_type ON ledger (type, seq);

CREATE TRIGGER ledger_never_updated BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are never updated');
END;

CREATE TRIGGER ledger_never_deleted BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are never deleted');
END;

-- Idempotency: (device, command id) -> the reply it got, kept at least 7 days.
CREATE TABLE processed_commands (
    device    TEXT NOT NULL,
    cmd_id    TEXT NOT NULL,
    type      TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    reply     BLOB NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (device, cmd_id)
) WITHOUT ROWID;
CREATE INDEX processed_commands_at ON processed_commands (at);

-- Messages committed with their cause and published after the commit; deleted once the broker acked.
CREATE TABLE outbox (
    id      INTEGER PRIMARY KEY,
    topic   TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos     INTEGER NOT NULL,
    retain  INTEGER NOT NULL
);

-- The last seq sent on each kds/{station} topic, for the `prev` field.
CREATE TABLE kds_streams (
    station  TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE staff_pins (
    employee_id TEXT PRIMARY KEY,
    pin_hash    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE device_credentials (
    device_id     TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
) WITHOUT ROWID;

-- Projections ------------------------------------------------------------------------------
CREATE TABLE p_store (
    id  TEXT PRIMARY KEY CHECK (id = 'store'),
    doc TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE p_menu (
    id      TEXT PRIMARY KEY CHECK (id = 'menu'),
    version TEXT GENERATED ALWAYS AS (json_extract(doc, '$.version')) VIRTUAL,
    doc     TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE p_availability (
    menu_item_id TEXT PRIMARY KEY,
    available    INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.available')) VIRTUAL,
    remaining    INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.remaining')) VIRTUAL,
    doc          TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE p_staff (
    employee_id TEXT PRIMARY KEY,
    name        TEXT GENERATED ALWAYS AS (json_extract(doc, '$.name')) VIRTUAL,
    role        TEXT GENERATED ALWAYS AS (json_extract(doc, '$.role')) VIRTUAL,
    active      INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.active')) VIRTUAL,
    doc         TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE p_staff_sessions (
    token_hash  TEXT PRIMARY KEY,
    employee_id TEXT GENERATED ALWAYS AS (json_extract(doc, '$.employee_id')) VIRTUAL,
    expires_at  TEXT GENERATED ALWAYS AS (json_extract(doc, '$.expires_at')) VIRTUAL,
    doc         TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE p_devices (
    device_id TEXT PRIMARY KEY,
    kind      TEXT GENERATED ALWAYS AS (json_extract(doc, '$.kind')) VIRTUAL,
    active    INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.active')) VIRTUAL,
    doc       TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE p_tables (
    table_id TEXT PRIMARY KEY,
    name     TEXT GENERATED ALWAYS AS (json_extract(doc, '$.name')) VIRTUAL,
    status   TEXT GENERATED ALWAYS AS (json_extract(doc, '$.status')) VIRTUAL,
    guests   INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.guests')) VIRTUAL,
    doc      TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE p_shifts (
    shift_id  TEXT PRIMARY KEY,
    opened_at TEXT GENERATED ALWAYS AS (json_extract(doc, '$.opened_at')) VIRTUAL,
    closed_at TEXT GENERATED ALWAYS AS (json_extract(doc, '$.closed_at')) VIRTUAL,
    doc       TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE p_tickets (
    ticket_id    TEXT PRIMARY KEY,
    number       INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.number')) VIRTUAL,
    business_day TEXT GENERATED ALWAYS AS (json_extract(doc, '$.business_day')) VIRTUAL,
    shift_id     TEXT GENERATED ALWAYS AS (json_extract(doc, '$.shift_id')) VIRTUAL,
    table_id     TEXT GENERATED ALWAYS AS (json_extract(doc, '$.table_id')) VIRTUAL,
    status       TEXT GENERATED ALWAYS AS (json_extract(doc, '$.status')) VIRTUAL,
    doc          TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX p_tickets_status ON p_tickets (status);
CREATE INDEX p_tickets_shift ON p_tickets (shift_id);

CREATE TABLE p_ticket_lines (
    ticket_id TEXT NOT NULL,
    line_id   TEXT NOT NULL,
    doc       TEXT NOT NULL,
    menu_item_id TEXT GENERATED ALWAYS AS (json_extract(doc, '$.menu_item_id')) VIRTUAL,
    state     TEXT GENERATED ALWAYS AS (json_extract(doc, '$.state')) VIRTUAL,
    qty       INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.qty')) VIRTUAL,
    PRIMARY KEY (ticket_id, line_id)
) WITHOUT ROWID;

CREATE TABLE p_payments (
    ticket_id  TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    doc        TEXT NOT NULL,
    kind       TEXT GENERATED ALWAYS AS (json_extract(doc, '$.kind')) VIRTUAL,
    amount     INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.amount')) VIRTUAL,
    PRIMARY KEY (ticket_id, payment_id)
) WITHOUT ROWID;

CREATE TABLE p_drawer_events (
    shift_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    doc      TEXT NOT NULL,
    kind     TEXT GENERATED ALWAYS AS (json_extract(doc, '$.kind')) VIRTUAL,
    amount   INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.amount')) VIRTUAL,
    PRIMARY KEY (shift_id, event_id)
) WITHOUT ROWID;
