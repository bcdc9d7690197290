-- StoreHub hub database, version 3: the manager page's browser sessions and pairing codes, so a
-- hub restart logs nobody out and keeps the codes on screen valid.
-- Nothing here is a secret in the clear: a session row is keyed by the sha256 of the browser's
-- cookie and holds the staff token only sealed with a key derived from that cookie (which the hub
-- never stores); a pairing code is kept as its sha256. These rows are not the books: they are
-- outside the ledger, pruned when expired, and a session is dead the moment the engine ended the
-- staff session behind it (deactivated employee, logout, expiry), whatever this table says.

CREATE TABLE web_sessions (
    sid_hash    TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL,
    token_box   BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

CREATE TABLE web_pair_codes (
    code_hash   TEXT PRIMARY KEY,
    kind        TEXT,
    stations    TEXT NOT NULL,
    issued_by   TEXT,
    state       TEXT NOT NULL CHECK (state IN ('open', 'used')),
    device_id   TEXT,
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) WITHOUT ROWID;
