-- offload schema 8 for PostgreSQL: API tokens, one row per live token (revoking deletes it).
CREATE TABLE offload_tokens (
    name text PRIMARY KEY,
    -- The token's non-secret part: a request finds its row by this index, then compares
    -- the hash in constant time.
    lookup text NOT NULL UNIQUE,
    -- SHA-256 of the whole token, in hex; the token itself is never stored.
    hash text NOT NULL,
    -- Comma-separated, from read, enqueue, admin.
    scopes text NOT NULL CHECK (scopes <> ''),
    created_at timestamptz NOT NULL,
    -- Written at most once a minute per token, so authenticating stays a read.
    last_used_at timestamptz
);
