-- Processors without an API answer an access or portability request by uploading their export on
-- the signed link's page (api/processor_uploads.py). Each file is stored encrypted under
-- $DSRFLOW_HOME/uploads (never in clear text) and recorded here with what the package and an
-- auditor need: its digest, size and the kind its content was checked to be. Rows are written in
-- the transaction that confirms the task, so a refused or interrupted upload leaves none.

CREATE TABLE processor_exports (
    id          uuid PRIMARY KEY,
    request_id  uuid NOT NULL REFERENCES dsr_requests (id),
    system      text NOT NULL,
    external_id text NOT NULL REFERENCES manual_tasks (external_id),
    filename    text NOT NULL,
    media_type  text NOT NULL,
    size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
    sha256      text NOT NULL,
    path        text NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (request_id, system, filename)
);
