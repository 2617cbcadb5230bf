-- Every item of every role of every account. `role` is wa_store::Role::code();
-- `value` is the sealed item (format byte, CRC-32, payload); `at` is a caller-chosen
-- unix time used to expire items (sent messages), 0 otherwise.
CREATE TABLE items (
    account TEXT    NOT NULL,
    role    INTEGER NOT NULL,
    scope   TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    value   BLOB    NOT NULL,
    at      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, role, scope, key)
) WITHOUT ROWID;

CREATE INDEX items_by_time ON items (account, role, at) WHERE at <> 0;
