-- The foreign key from a delivery to its event made the trigger's insert
-- read outbox_events (the referential check), and on SERIALIZABLE every
-- read is a predicate lock: each operation that recorded two events read
-- the table another concurrent operation was inserting into, and the two
-- collided (one was run again). Nothing needs the key: deliveries are made
-- by the trigger from the event being inserted, and pruning deletes an
-- event only once it has no delivery left.
ALTER TABLE outbox_deliveries DROP CONSTRAINT outbox_deliveries_event_id_fkey;
