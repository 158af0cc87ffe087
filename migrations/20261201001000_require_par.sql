-- RFC 9126 §6: a client registered with require_pushed_authorization_requests may send its
-- authorization requests only through the PAR endpoint.
ALTER TABLE clients ADD COLUMN require_par boolean NOT NULL DEFAULT false;
