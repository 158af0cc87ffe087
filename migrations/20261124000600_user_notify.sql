-- Every change to a user row, by any path (the server, the CLI, plain SQL by an operator),
-- NOTIFYs latchkey_users with the user's id at commit, so that every replica drops its cached
-- copy at once (src/store/user-cache.ts).
CREATE FUNCTION latchkey_users_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('latchkey_users', COALESCE(NEW.id, OLD.id)::text); RETURN NULL; END $$;

CREATE TRIGGER users_notify AFTER UPDATE OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION latchkey_users_notify();
