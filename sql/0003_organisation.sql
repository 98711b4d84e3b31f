-- Districts, schools and staff users.
CREATE TABLE districts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        varchar(200) NOT NULL,
    code        varchar(50) NOT NULL UNIQUE,
    address     text,
    city        varchar(100),
    state       varchar(2),
    zip_code    varchar(10),
    phone       varchar(20),
    email       varchar(255),
    is_active   boolean NOT NULL DEFAULT true,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE schools (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              varchar(200) NOT NULL,
    code              varchar(50) NOT NULL UNIQUE,
    district_id       uuid NOT NULL REFERENCES districts (id) ON DELETE RESTRICT,
    address           text,
    city              varchar(100),
    state             varchar(2),
    zip_code          varchar(10),
    phone             varchar(20),
    email             varchar(255),
    principal         varchar(200),
    total_enrollment  integer CHECK (total_enrollment >= 0),
    is_active         boolean NOT NULL DEFAULT true,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schools_district_idx ON schools (district_id);

CREATE TABLE users (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email                       varchar(255) NOT NULL UNIQUE,
    first_name                  varchar(100) NOT NULL,
    last_name                   varchar(100) NOT NULL,
    role                        varchar(50) NOT NULL,
    is_active                   boolean NOT NULL DEFAULT true,
    last_login                  timestamptz,
    school_id                   uuid REFERENCES schools (id) ON DELETE SET NULL,
    district_id                 uuid REFERENCES districts (id) ON DELETE SET NULL,
    phone                       varchar(20),
    email_verified              boolean NOT NULL DEFAULT false,
    email_verification_expires  timestamptz,
    password_reset_expires      timestamptz,
    password_changed_at         timestamptz,
    two_factor_enabled          boolean NOT NULL DEFAULT false,
    failed_login_attempts       integer NOT NULL DEFAULT 0,
    lockout_until               timestamptz,
    must_change_password        boolean NOT NULL DEFAULT false,
    mfa_enabled                 boolean NOT NULL DEFAULT false,
    mfa_enabled_at              timestamptz,
    oauth_provider              varchar(50),
    oauth_provider_id           varchar(255),
    profile_picture_url         varchar(500),
    password_hash               varchar(255) NOT NULL,
    email_verification_token    varchar(255),
    password_reset_token        varchar(255),
    two_factor_secret           varchar(255),
    mfa_secret                  varchar(255),
    mfa_backup_codes            text,
    version                     integer NOT NULL DEFAULT 1,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    deleted_at                  timestamptz
);
CREATE INDEX users_school_idx ON users (school_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON districts, schools, users TO wxdata_app;
