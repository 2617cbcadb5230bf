-- Text columns escape U+0000, which PostgreSQL's text cannot hold, with U+0001: U+0000 is
-- stored as U+0001 U+0001 and U+0001 as U+0001 U+0002. Rows written before held any
-- U+0001 as it was; they are rewritten to the escaped form. They are moved out first and
-- put back rewritten, so no rewritten key meets an old one not yet rewritten.
CREATE TEMPORARY TABLE wa_items_moved ON COMMIT DROP AS
    SELECT account, role, scope, key, value, at FROM wa_items
    WHERE strpos(account, E'\x01') > 0 OR strpos(scope, E'\x01') > 0 OR strpos(key, E'\x01') > 0;
DELETE FROM wa_items
    WHERE strpos(account, E'\x01') > 0 OR strpos(scope, E'\x01') > 0 OR strpos(key, E'\x01') > 0;
INSERT INTO wa_items (account, role, scope, key, value, at)
    SELECT replace(account, E'\x01', E'\x01\x02'), role, replace(scope, E'\x01', E'\x01\x02'),
           replace(key, E'\x01', E'\x01\x02'), value, at
    FROM wa_items_moved;
DROP TABLE wa_items_moved;
