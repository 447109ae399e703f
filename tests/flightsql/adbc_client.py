"""Drives a running Hourglass over Arrow Flight SQL with the ADBC driver (a client nobody on
the team wrote). Exits non-zero, with the reason, on the first failed expectation.

usage: adbc_client.py GRPC_URI READ_TOKEN EXPECTED_EVENTS WRITE_KEY
"""

import sys

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager


def connect_basic(uri, token):
    # The driver performs the Flight handshake with basic auth, then uses the bearer token the
    # server returns (and sends unpadded base64, which the server must accept).
    return flightsql.connect(uri, db_kwargs={"username": "analyst", "password": token})


def connect_bearer(uri, token):
    return flightsql.connect(uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {token}"})


def expect(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def refused(uri, token):
    try:
        with connect_bearer(uri, token) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM events")
            cur.fetchall()
    except (adbc_driver_manager.Error, Exception) as e:  # noqa: BLE001 - any refusal will do
        return str(e)
    return None


def main():
    uri, token, expected, write_key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    with connect_basic(uri, token) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM events")
        (n,) = cur.fetchone()
        expect(n == expected, f"count(*) over basic auth: {n} != {expected}")

        # A prepared statement with a parameter, executed twice with different values.
        cur.execute("SELECT count(*) AS n FROM events WHERE name = $1", parameters=("pageview",))
        (pageviews,) = cur.fetchone()
        expect(pageviews == expected, f"prepared count: {pageviews} != {expected}")
        cur.execute("SELECT count(*) AS n FROM events WHERE name = $1", parameters=("purchase",))
        (purchases,) = cur.fetchone()
        expect(purchases == 0, f"prepared count with another value: {purchases}")

        # A million rows, streamed in batches.
        cur.execute("SELECT value FROM generate_series(1, 1000000)")
        table = cur.fetch_arrow_table()
        expect(table.num_rows == 1_000_000, f"1M-row result has {table.num_rows} rows")
        expect(sum(table.column(0).to_pylist()[:10]) == 55, "1M-row result starts 1..10")

        # Metadata: server info, catalogs/schemas/tables, a table's schema.
        info = conn.adbc_get_info()
        expect(info.get("vendor_name") == "Hourglass", f"vendor name: {info}")
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        tables = {
            t["table_name"]
            for catalog in objects
            for schema in (catalog["catalog_db_schemas"] or [])
            for t in (schema["db_schema_tables"] or [])
        }
        expect({"events", "raw_events"} <= tables, f"tables listed: {sorted(tables)}")
        expect(not any(t.startswith("system") for t in tables), f"a tenant sees system tables: {sorted(tables)}")
        schema = conn.adbc_get_table_schema("events")
        expect("tenant_id" in schema.names and "path" in schema.names, f"events schema: {schema.names}")

    with connect_bearer(uri, token) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM raw_events")
        (raw,) = cur.fetchone()
        expect(raw == expected, f"count(*) over a bearer token: {raw} != {expected}")
        # Read-only: DDL is refused with a clear error.
        try:
            cur.execute("CREATE TABLE x AS SELECT 1")
            cur.fetchall()
            expect(False, "CREATE TABLE was accepted")
        except adbc_driver_manager.Error as e:
            expect("read-only" in str(e) or "not allowed" in str(e).lower(), f"DDL error: {e}")

    for bad, why in [("hgr_not-a-real-token", "unknown token"), (write_key, "write key")]:
        error = refused(uri, bad)
        expect(error is not None, f"a {why} was accepted")
    print("adbc flight sql: all checks passed")


if __name__ == "__main__":
    main()
