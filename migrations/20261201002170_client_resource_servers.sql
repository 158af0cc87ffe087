-- A resource server is an explicit client property (issue 17): the audiences whose access tokens
-- the client may introspect (RFC 7662 §4). May-request-tokens-for (audiences) no longer implies it;
-- existing clients start with none and introspect only their own tokens.
ALTER TABLE clients ADD COLUMN resource_servers jsonb NOT NULL DEFAULT '[]'::jsonb;
