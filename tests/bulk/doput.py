"""Bulk ingest through pyarrow's Flight client (a client nobody on the Hourglass team wrote).

Usage:
  doput.py check GRPC_URL WRITE_KEY READ_TOKEN
      A million rows in batches, a batch with bad rows reported per row, a re-sent batch
      counted as duplicates, and the calls that must be refused. Prints "all checks passed".
  doput.py stream GRPC_URL WRITE_KEY
      Sends batches of BATCH_ROWS rows with ids "bNNNNN-RRRRRR" until the server goes away,
      printing "acked N" as each batch is acknowledged (for the SIGKILL test).
"""

import json
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight

BATCH_ROWS = 50_000


def options(token):
    return flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + token.encode())])


def events(prefix, start, rows, now_ms):
    """`rows` valid pageviews with ids `{prefix}-{n:07d}`, spread over the last hour."""
    ids = [f"{prefix}-{n:07d}" for n in range(start, start + rows)]
    return pa.record_batch(
        {
            "event_id": pa.array(ids, pa.string()),
            "timestamp": pa.array([now_ms - (n % 3_600_000) for n in range(rows)], pa.timestamp("ms", tz="UTC")),
            "name": pa.array(["pageview"] * rows, pa.string()),
            "url": pa.array([f"https://shop.example/p/{n % 500}" for n in range(rows)], pa.string()),
            "client_id": pa.array([f"c{n % 20_000}" for n in range(rows)], pa.string()),
            "screen_width": pa.array([1280] * rows, pa.int32()),
        }
    )


def ack_of(writer, reader):
    buf = reader.read()
    if buf is None:
        # The call failed: pyarrow raises its status on close.
        writer.close()
        raise AssertionError("the stream ended without an acknowledgement or an error")
    return json.loads(buf.to_pybytes())


def put(client, token, batches, schema=None):
    """Sends `batches` in one DoPut, reading each acknowledgement after its batch."""
    schema = schema or batches[0].schema
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("events"), schema, options(token))
    acks = []
    for batch in batches:
        writer.write_batch(batch)
        acks.append(ack_of(writer, reader))
    writer.done_writing()
    writer.close()
    return acks


def expect_error(kind, what, call):
    try:
        call()
    except kind as e:
        print(f"ok: {what}: {type(e).__name__}: {str(e).splitlines()[0]}")
        return str(e)
    raise AssertionError(f"{what}: expected {kind.__name__}")


def check(url, write_key, read_token):
    client = flight.FlightClient(url)
    now_ms = int(time.time() * 1000)

    # A million rows: 20 batches of 50 000, written back to back, then every ack read.
    batches = [events("m", i * BATCH_ROWS, BATCH_ROWS, now_ms) for i in range(20)]
    started = time.monotonic()
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("events"), batches[0].schema, options(write_key))
    for batch in batches:
        writer.write_batch(batch)
    writer.done_writing()
    acks = [ack_of(writer, reader) for _ in batches]
    writer.close()
    elapsed = time.monotonic() - started
    assert [a["batch"] for a in acks] == list(range(20)), acks
    assert sum(a["accepted"] for a in acks) == 1_000_000, acks
    assert all(a["rejected"] == 0 and a["rows"] == BATCH_ROWS for a in acks), acks
    print(f"ok: 1000000 rows acknowledged in {elapsed:.2f} s")

    # Bad rows are reported one by one and do not spoil the good rows beside them.
    bad = pa.record_batch(
        {
            "event_id": pa.array(["bad-0", "bad-1", "bad-2", "bad-3", "bad-4"]),
            "name": pa.array(["pageview", None, "signup", "pageview", "pageview"]),
            "country": pa.array(["DE", "FR", "Germany", None, None]),
            "timestamp": pa.array([now_ms, now_ms, now_ms, 1, now_ms], pa.int64()),
            "props": pa.array(
                [{"plan": "pro"}, None, None, None, {"seats": "3"}], pa.map_(pa.string(), pa.string())
            ),
        }
    )
    (ack,) = put(client, write_key, [bad])
    assert ack["accepted"] == 2 and ack["rejected"] == 3, ack
    errors = {e["index"]: e for e in ack["errors"]}
    assert sorted(errors) == [1, 2, 3], ack
    assert errors[1]["field"] == "name" and "required" in errors[1]["error"], ack
    assert errors[2]["field"] == "country" and "ISO 3166" in errors[2]["error"], ack
    assert errors[3]["field"] == "timestamp", ack
    print(f"ok: bad rows reported per row: {ack['errors']}")

    # A batch sent again is stored once.
    (again,) = put(client, write_key, [batches[0]])
    assert again["accepted"] == BATCH_ROWS and again["duplicates"] == BATCH_ROWS, again
    print("ok: a re-sent batch counts as duplicates")

    small = events("x", 0, 3, now_ms)
    expect_error(flight.FlightUnauthenticatedError, "unknown key", lambda: put(client, "hg_w_nope", [small]))
    expect_error(flight.FlightUnauthorizedError, "read token", lambda: put(client, read_token, [small]))
    unknown = pa.record_batch({"name": pa.array(["pageview"]), "colour": pa.array(["red"])})
    message = expect_error(pa.ArrowInvalid, "unknown column", lambda: put(client, write_key, [unknown]))
    assert "colour" in message, message

    def wrong_path():
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("raw"), small.schema, options(write_key))
        writer.write_batch(small)
        writer.close()

    message = expect_error(pa.ArrowInvalid, "wrong descriptor", wrong_path)
    assert "events" in message, message
    print("all checks passed")


def stream(url, write_key):
    client = flight.FlightClient(url)
    now_ms = int(time.time() * 1000)
    schema = events("b", 0, 1, now_ms).schema
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("events"), schema, options(write_key))
    try:
        for n in range(100_000):
            writer.write_batch(events(f"b{n:05d}", 0, BATCH_ROWS, now_ms))
            # Two batches in flight: batch n travels while batch n - 1 is acknowledged.
            if n >= 1:
                ack = ack_of(writer, reader)
                print(f"acked {ack['batch']} accepted {ack['accepted']}", flush=True)
    except Exception as e:  # the server was killed: report and stop
        print(f"stream ended: {type(e).__name__}", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "check":
        check(*sys.argv[2:5])
    elif mode == "stream":
        stream(*sys.argv[2:4])
    else:
        sys.exit(__doc__)
