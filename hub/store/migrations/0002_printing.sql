-- StoreHub hub database, version 2: the durable print queue.
-- A job row is written in the same transaction as its `print.queued` ledger event (the outbox
-- idea), and every later state change with its ledger event (`print.printed`, `print.rerouted`,
-- `print.failed`), except `printing`: that mark is written just before the job's bytes go to the
-- printer, so a job cut short by a crash is printed again with a REPRINT banner, never silently twice.

CREATE TABLE print_jobs (
    job_id      TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    printer     TEXT,
    kind        TEXT NOT NULL,
    doc         TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'printing', 'printed', 'failed')),
    routed_from TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    reprint     INTEGER NOT NULL DEFAULT 0,
    queued_at   TEXT NOT NULL,
    done_at     TEXT,
    done_seq    INTEGER
) WITHOUT ROWID;
CREATE INDEX print_jobs_open ON print_jobs (state, printer, seq);
