"""Runs the adversarial isolation suite over the PostgreSQL wire protocol with psycopg, through
the simple query protocol (plain statements) and the extended one (the same statements
prepared, with a parameter where the tenant id was).

usage: pgwire_suite.py HOST PORT READ_TOKEN SUITE_FILE MARKER
Exits non-zero if any answer or error mentions MARKER.
"""

import sys

import psycopg


def run(conn, sql, params=None, prepare=None):
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params, prepare=prepare)
            rows = cur.fetchall() if cur.description else []
            return True, repr(rows)
    except psycopg.Error as e:  # any error is fine as long as it does not leak
        return False, f"{e.sqlstate} {e}"


def main():
    host, port, token, suite, marker = sys.argv[1:6]
    queries = [line.strip() for line in open(suite) if line.strip() and not line.strip().startswith("--")]
    answered = 0
    with psycopg.connect(host=host, port=port, user="attacker", dbname="hourglass", password=token,
                         autocommit=True) as conn:
        for sql in queries:
            attempts = [(sql, None, False)]
            if "'victim'" in sql:
                attempts.append((sql.replace("'victim'", "%s").replace("%'", "%%'"), ("victim",), True))
            for text, params, prepare in attempts:
                ok, seen = run(conn, text, params, prepare)
                answered += ok
                if marker in seen.lower():
                    print(f"LEAK through {text!r} {params!r}:\n{seen[:2000]}")
                    sys.exit(1)
    if answered < 5:
        print(f"too few queries were answered to mean anything: {answered}")
        sys.exit(1)
    print(f"postgres wire: {len(queries)} queries, {answered} answered, no leaks")


if __name__ == "__main__":
    main()
