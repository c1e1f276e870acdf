-- People and programs who may use `aifactory serve`: users with their argon2 password hashes,
-- and API tokens kept only as their SHA-256. Roles are the server's names (viewer, operator,
-- engineer, admin, agent); the store keeps them as text and does not interpret them.
CREATE TABLE accounts_users (
    name           TEXT   NOT NULL PRIMARY KEY,
    password_hash  TEXT   NOT NULL,
    role           TEXT   NOT NULL
);

CREATE TABLE accounts_tokens (
    token_sha256  TEXT    NOT NULL PRIMARY KEY,
    user_name     TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    issued_at     BIGINT  NOT NULL
);
