-- A deleted user's keys are found through this index: without it the
-- DELETE scans the whole table, which on PostgreSQL (SERIALIZABLE) reads,
-- and so conflicts with, every key minted meanwhile.
CREATE INDEX plugin_api_keys_keys_user ON plugin_api_keys_keys (user_id);
