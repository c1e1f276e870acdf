-- Sign-in with a password: users may have an argon2 password hash beside their API token, and
-- a successful sign-in opens a session (a token of its own, only its SHA-256 kept) that expires.
ALTER TABLE users ADD COLUMN password_hash text;

-- Officers change users (a person's own password is set by the portal itself, as `system`).
CREATE POLICY users_update ON users FOR UPDATE USING (portal_officer()) WITH CHECK (portal_officer());

CREATE TABLE sessions (
    token_sha256 text PRIMARY KEY,
    user_name text NOT NULL REFERENCES users,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
-- Only the portal itself opens, checks and closes sessions.
CREATE POLICY sessions_system ON sessions FOR ALL
    USING (portal_role() = 'system') WITH CHECK (portal_role() = 'system');
GRANT SELECT, INSERT, DELETE ON sessions TO aifactory_portal;
