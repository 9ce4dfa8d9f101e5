"""A mail worker in plain Python (standard library only): takes jobs from the `emails` station as
a member of group `mailers`, sends them, and acknowledges each one. A job that fails is given
back with a delay (nack) and retried; after the station's max_deliveries it lands in emails.dlq.
Run several workers at once and they share the jobs.

    python3 examples/worker.py [URL] [--idle-exit SECONDS]

URL defaults to http://127.0.0.1:8080. With --idle-exit, the worker stops once no job arrived for
that long; otherwise it runs until interrupted. RETRY_DELAY_MS (default 2000) sets the nack delay.
"""

import json
import os
import sys
import time
import urllib.request

STATION, GROUP = "emails", "mailers"
RETRY_DELAY_MS = int(os.environ.get("RETRY_DELAY_MS", "2000"))


def call(url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def send_email(job):
    """Stands in for the real work; addresses at bounce.example always fail."""
    if job["to"].endswith("@bounce.example"):
        raise RuntimeError(f"mailbox {job['to']} does not exist")
    print(f"sent {job['template']} to {job['to']}", flush=True)


def main():
    args = sys.argv[1:]
    idle_exit = None
    if "--idle-exit" in args:
        at = args.index("--idle-exit")
        idle_exit = float(args[at + 1])
        del args[at:at + 2]
    base = (args[0] if args else "http://127.0.0.1:8080").rstrip("/")
    last_job = time.monotonic()
    while True:
        answer = call(f"{base}/v1/stations/{STATION}/messages?group={GROUP}&max=10&wait_ms=1000")
        jobs = answer["messages"]
        if not jobs:
            if idle_exit is not None and time.monotonic() - last_job >= idle_exit:
                return
            continue
        last_job = time.monotonic()
        done, failed = [], []
        for job in jobs:
            try:
                send_email(job["value"])
                done.append(job["offset"])
            except Exception as error:  # the job, not the worker, failed
                print(f"job {job['offset']} failed (delivery {job['delivery']}): {error}", flush=True)
                failed.append(job["offset"])
        if done:
            call(f"{base}/v1/stations/{STATION}/ack", {"group": GROUP, "offsets": done})
        if failed:
            call(f"{base}/v1/stations/{STATION}/nack",
                 {"group": GROUP, "offsets": failed, "delay_ms": RETRY_DELAY_MS})


if __name__ == "__main__":
    main()
