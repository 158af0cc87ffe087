-- Every change to a login session (logout, idle sliding, pruning; by the server, the CLI or plain
-- SQL) NOTIFYs latchkey_sessions with the session's id digest at commit, so that every replica
-- drops its cached copy at once (src/store/session-cache.ts).
CREATE FUNCTION latchkey_sessions_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('latchkey_sessions', OLD.id_digest); RETURN NULL; END $$;

CREATE TRIGGER login_sessions_notify AFTER UPDATE OR DELETE ON login_sessions FOR EACH ROW EXECUTE FUNCTION latchkey_sessions_notify();
