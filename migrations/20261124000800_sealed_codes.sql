-- Authorization codes are sealed (src/tokens/codes.ts) instead of stored: /authorize writes
-- nothing. Single use moves to the family a redemption creates: its code_digest (the digest of the
-- code's random id) is now UNIQUE, so a second redemption of one code cannot create a second family.
-- Codes issued before this migration (valid for at most CODE_TTL seconds) can no longer be redeemed.
DROP TABLE authorization_codes;
DROP INDEX refresh_families_code;
CREATE UNIQUE INDEX refresh_families_code_key ON refresh_families (code_digest);
