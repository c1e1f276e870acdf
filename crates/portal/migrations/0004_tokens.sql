-- API tokens with a lifetime: a user may hold several, each expires, an officer lists, issues
-- and revokes them, and logging out with one revokes it. Only a token's SHA-256 is kept; its
-- public id (`tok_` and 16 hex digits) names it in lists, the audit trail and the CLI, and is
-- never derived from the token or its hash.
CREATE TABLE tokens (
    id text PRIMARY KEY CHECK (id ~ '^tok_[0-9a-f]{16}$'),
    token_sha256 text NOT NULL UNIQUE,
    user_name text NOT NULL REFERENCES users,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    -- Null while the token is valid; then when and by whom it was revoked.
    revoked_at_ms bigint,
    revoked_by text,
    CHECK (expires_at_ms > created_at_ms),
    CHECK ((revoked_at_ms IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX tokens_user ON tokens (user_name);

-- A token is only ever revoked, once: its user, hash and lifetime never change, and a revoked
-- token is not brought back.
CREATE FUNCTION portal_tokens_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.token_sha256, NEW.user_name, NEW.created_at_ms, NEW.expires_at_ms)
        IS DISTINCT FROM
        (OLD.id, OLD.token_sha256, OLD.user_name, OLD.created_at_ms, OLD.expires_at_ms)
        OR OLD.revoked_at_ms IS NOT NULL
    THEN
        RAISE EXCEPTION 'token %: only its revocation changes it, once', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tokens_guard BEFORE UPDATE ON tokens
    FOR EACH ROW EXECUTE FUNCTION portal_tokens_guard();

ALTER TABLE tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE tokens FORCE ROW LEVEL SECURITY;
-- Officers list, issue and revoke tokens; the portal itself (`system`) checks them and revokes
-- one at logout. Assessors, plants and providers see none, not even their own.
CREATE POLICY tokens_officer ON tokens FOR ALL
    USING (portal_officer()) WITH CHECK (portal_officer());
GRANT SELECT, INSERT, UPDATE ON tokens TO aifactory_portal;

-- Each user's one token moves here, valid for a year from when the user was added; then the
-- users table keeps no token at all. The migration reads and writes as the portal itself, so
-- row-level security (forced on users, binding the owner) lets it see every row.
SELECT set_config('aifactory.role', 'system', true);
INSERT INTO tokens (id, token_sha256, user_name, created_at_ms, expires_at_ms)
    SELECT 'tok_' || substr(md5(random()::text || clock_timestamp()::text || name), 1, 16),
           token_sha256, name, created_at_ms, created_at_ms + 365 * 86400000::bigint
    FROM users;
ALTER TABLE users DROP COLUMN token_sha256;
