-- A membership's references may be checked at commit (SET CONSTRAINTS ...
-- DEFERRED), which the operations creating a user or a space ask for: the
-- check reads the index page where concurrent creations insert their rows,
-- and read at the end of the transaction it no longer makes them collide
-- (see AppServices::check_references_at_commit). Everywhere else the check
-- stays immediate.
ALTER TABLE memberships ALTER CONSTRAINT memberships_user_id_fkey DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE memberships ALTER CONSTRAINT memberships_space_id_fkey DEFERRABLE INITIALLY IMMEDIATE;
