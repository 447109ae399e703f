-- Hourglass catalog, PostgreSQL backend, version 5: materialized rollup hours.

-- One row per UTC hour whose rollups are materialized. The rows themselves are one Parquet
-- object of the `rollups` table (file_id, in `files`). The hour was computed from the events
-- of hours window_start_hour..=window_end_hour (the sessions touching the hour, whole); it is
-- stale once an events file newer than input_file_id lands in that window (late events, a
-- persist of the buffer, compaction or reprocessing), and then computed again.
CREATE TABLE rollup_hours (
    hour               BIGINT PRIMARY KEY,
    file_id            BIGINT NOT NULL,
    input_file_id      BIGINT NOT NULL,
    window_start_hour  BIGINT NOT NULL,
    window_end_hour    BIGINT NOT NULL,
    definitions        TEXT NOT NULL,
    rows               BIGINT NOT NULL,
    computed_at        BIGINT NOT NULL
);

CREATE INDEX files_table_hour_id ON files (table_name, hour, id);
