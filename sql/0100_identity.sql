-- Identity and access: API keys, sessions, login attempts, IP restrictions.
-- Credentials (key hashes, session tokens) are write-only secret columns.

CREATE TABLE api_keys (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            varchar(255) NOT NULL,
    key_prefix      varchar(100) NOT NULL,
    description     text,
    scopes          text[],
    is_active       boolean NOT NULL DEFAULT true,
    expires_at      timestamptz,
    last_used_at    timestamptz,
    usage_count     integer NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    ip_restriction  varchar(100),
    rate_limit      integer CHECK (rate_limit >= 0),
    key_hash        varchar(255) NOT NULL UNIQUE,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      varchar(128),
    updated_by      varchar(128)
);

CREATE TABLE sessions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    ip_address        varchar(64) NOT NULL,
    user_agent        text,
    expires_at        timestamptz NOT NULL,
    last_accessed_at  timestamptz,
    is_active         boolean NOT NULL DEFAULT true,
    metadata          jsonb,
    session_token     varchar(255) NOT NULL UNIQUE,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at) WHERE is_active;
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE login_attempts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid REFERENCES users (id) ON DELETE SET NULL,
    username        varchar(255),
    ip_address      varchar(64) NOT NULL,
    user_agent      text,
    success         boolean NOT NULL DEFAULT false,
    failure_reason  text,
    metadata        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_ip_address_idx ON login_attempts (ip_address, created_at);
CREATE INDEX login_attempts_user_id_idx ON login_attempts (user_id, created_at);

CREATE TABLE ip_restrictions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type        varchar(20) NOT NULL CHECK (type IN ('whitelist','blacklist','geo_restriction')),
    ip_address  varchar(64),
    ip_range    jsonb,
    countries   text[],
    reason      text NOT NULL,
    expires_at  timestamptz,
    is_active   boolean NOT NULL DEFAULT true,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    created_by  varchar(128),
    updated_by  varchar(128)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys, sessions, login_attempts, ip_restrictions TO wxdata_app;
