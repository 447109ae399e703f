"""Runs the adversarial isolation suite over Arrow Flight SQL with the ADBC driver.

usage: flightsql_suite.py GRPC_URI READ_TOKEN SUITE_FILE MARKER
Exits non-zero if any answer or error mentions MARKER.
"""

import sys

import adbc_driver_flightsql.dbapi as flightsql


def main():
    uri, token, suite, marker = sys.argv[1:5]
    queries = [line.strip() for line in open(suite) if line.strip() and not line.strip().startswith("--")]
    answered = 0
    for sql in queries:
        try:
            with flightsql.connect(uri, db_kwargs={"username": "attacker", "password": token}) as conn:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    seen = repr(cur.fetch_arrow_table().to_pylist())
                    answered += 1
        except Exception as e:  # noqa: BLE001 - any error is fine as long as it does not leak
            seen = str(e)
        if marker in seen.lower():
            print(f"LEAK through {sql!r}:\n{seen[:2000]}")
            sys.exit(1)
    if answered < 5:
        print(f"too few queries were answered to mean anything: {answered}")
        sys.exit(1)
    print(f"flight sql: {len(queries)} queries, {answered} answered, no leaks")


if __name__ == "__main__":
    main()
