-- The processor fan-out: the plan each request was given, each system's task and its result,
-- and access packages (the file is encrypted on disk; only a hash of the download token is kept).

CREATE TABLE request_plans (
    request_id  uuid PRIMARY KEY REFERENCES dsr_requests (id),
    plan        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE system_tasks (
    request_id   uuid NOT NULL REFERENCES dsr_requests (id),
    system       text NOT NULL,
    action       text NOT NULL,
    status       text NOT NULL,
    found        integer NOT NULL DEFAULT 0,
    changed      integer NOT NULL DEFAULT 0,
    kept         integer NOT NULL DEFAULT 0,
    datasets     jsonb NOT NULL DEFAULT '{}'::jsonb,
    external_id  text,
    message      text,
    attempt      integer NOT NULL DEFAULT 1,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, system, action)
);
CREATE INDEX system_tasks_external ON system_tasks (external_id) WHERE external_id IS NOT NULL;
CREATE INDEX system_tasks_attention ON system_tasks (status) WHERE status = 'needs_attention';

CREATE TABLE packages (
    id            uuid PRIMARY KEY,
    request_id    uuid NOT NULL REFERENCES dsr_requests (id),
    kind          text NOT NULL,
    path          text NOT NULL,
    size_bytes    bigint NOT NULL,
    records       integer NOT NULL,
    token_hash    text UNIQUE,
    expires_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    downloaded_at timestamptz
);
CREATE INDEX packages_request ON packages (request_id);
