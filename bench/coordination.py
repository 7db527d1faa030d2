"""Section 3: coordination latency in real Airflow - a small federation's DAGs run at once with
``airflow dags test`` (scripts/localnet.run_dags_test), then read back:

* every party's task instances (start/end) from its own sqlite ``airflow.db``;
* the signed records in the bucket: when every input party published ``inputs/<p>/done`` (the
  envelope header's ``created_at``), when the leader published the roster, when each compute party
  began its attempt over the roster (its ``computing`` status record, written before it reads its
  shares and hands MPyC the job; "in MPyC" below), when its MPyC process was connected (the
  ``computed`` record's connect time after that point, 0 for a process connected ahead), and when
  the recipient recorded the result revealed (its ``revealed`` record, before its task ends).
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from common import datagen, log

DATE = "2024-04-01"
ORDER = ["aggregate", "share", "wait_for_inputs", "compute", "wait_for_result", "reveal"]


def _ts(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).replace("T", " ")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def task_instances(db: Path, dag_id: str) -> dict[str, dict]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        cols = {r["name"] for r in conn.execute("PRAGMA table_info(task_instance)")}
        wanted = [c for c in ("task_id", "start_date", "end_date", "queued_dttm", "state", "try_number") if c in cols]
        rows = conn.execute(f"SELECT {', '.join(wanted)} FROM task_instance WHERE dag_id = ?", (dag_id,)).fetchall()
    return {
        r["task_id"]: {
            "start": _ts(r["start_date"]),
            "end": _ts(r["end_date"]),
            "queued": _ts(r["queued_dttm"]) if "queued_dttm" in wanted else None,
            "state": r["state"],
            "tries": r["try_number"] if "try_number" in wanted else None,
        }
        for r in rows
    }


def _envelope(blob: bytes) -> tuple[dict, dict | None]:
    from mpc_federation.envelope import parts

    doc, body = parts(blob)
    header = doc["header"]
    payload = None
    if not header.get("encrypted"):
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
    return header, payload


def bucket_records(store, root: str) -> dict[str, tuple[dict, dict | None]]:
    return {key[len(root) + 1 :]: _envelope(store.get(key)) for key in store.list(root + "/")}


def run_coordination(
    work: Path,
    s3,
    *,
    companies: int,
    computes: int,
    trips: int,
    spark_master: str,
    timeout: float,
    wait_in_task: str = "near",
) -> dict:
    """One night of a small federation through real Airflow, Spark, S3 server and MPyC.

    :param wait_in_task: every party's ``[mpc] wait_in_task``: ``near`` (the default: the compute
        and reveal tasks defer while the rendezvous is far, then wait themselves), ``False`` (sensor
        tasks wait until the stage is ready) or ``True`` (those tasks wait throughout).
    """
    import uuid

    import demo
    from localnet import run_dags_test
    from mpcstages import parties_yaml

    from mpc_federation.spec import load_spec
    from mpc_federation.store import CoordinationStore

    plist = parties_yaml(companies, computes)
    names = [p["id"] for p in plist if "input" in p["roles"]]
    data_dir = work / "data"
    datagen().generate(data_dir, names, trips, 7, "2024-01", "2024-03")
    root = work / f"federation-{uuid.uuid4().hex[:6]}"
    spec_path, parties = demo.setup_federation(root, plist, s3, spark_master, data_dir)
    spec = load_spec(spec_path)
    log(f"(3) airflow dags test: {len(parties)} parties at once ({', '.join(p.id for p in parties)})")
    t0 = time.monotonic()
    codes = run_dags_test(
        parties,
        spec.computation,
        DATE,
        timeout,
        env_of=lambda party: {**party.env(), "AIRFLOW__MPC__WAIT_IN_TASK": wait_in_task},
    )
    wall = time.monotonic() - t0
    if any(codes.values()):
        logs = {p.id: (p.home / f"dags-test-{DATE}.log") for p in parties}
        bad = {pid: logs[pid].read_text()[-2000:] for pid, code in codes.items() if code}
        raise RuntimeError(f"airflow dags test failed: {codes}\n{bad}")
    try:
        from mpc_federation.layout import run_key
    except ImportError:  # before layout.py
        from mpc_federation.channel import run_key

    key = run_key(datetime.fromisoformat(DATE).replace(tzinfo=UTC))
    store = CoordinationStore(s3.store_config(spec.bucket))
    out = analyse(parties, spec, store, key)
    out.update(
        {
            "parties": len(parties),
            "companies": companies,
            "computes": computes,
            "trips": trips,
            "wall_s": wall,
            "poll_interval_s": {"far": 5, "near": 0.5},
            "wait_in_task": wait_in_task,
        }
    )
    return out


def analyse(parties, spec, store, run_key: str) -> dict:
    root = f"{spec.prefix}/{spec.computation}/{run_key}"
    records = bucket_records(store, root)
    tis = {p.id: task_instances(p.home / "airflow" / "airflow.db", spec.computation) for p in parties}
    done = {
        k.split("/")[1]: h["created_at"]
        for k, (h, _) in records.items()
        if k.startswith("inputs/") and k.endswith("/done")
    }
    last_pub = max(done.values())
    last_party = max(done, key=done.get)
    compute = {}
    for c in spec.compute_parties:
        ti = tis[c.id]
        computing = next((pl for k, (h, pl) in records.items() if k.startswith(f"status/{c.id}/computing")), None)
        computed = next((pl for k, (h, pl) in records.items() if k.startswith(f"status/{c.id}/computed")), None)
        launch = computing.get("at") if computing else None
        connect = (computed or {}).get("seconds", {}).get("connect")
        sensor = ti.get("wait_for_inputs")  # none when the compute task waits itself
        compute[c.id] = {
            "sensor_done_after_s": None if sensor is None else sensor["end"] - last_pub,
            "compute_task_start_after_s": ti["compute"]["start"] - last_pub,
            "mpyc_launch_after_s": None if launch is None else launch - last_pub,
            "mpyc_connected_after_s": None if launch is None or connect is None else launch + connect - last_pub,
            "gap_sensor_to_compute_s": None if sensor is None else ti["compute"]["start"] - sensor["end"],
        }
    outputs = [h["created_at"] for k, (h, _) in records.items() if k.startswith("outputs/")]
    recipient = spec.recipients[0].id
    rti = tis[recipient]
    rosters = [h["created_at"] for k, (h, _) in records.items() if k.startswith("roster/")]
    revealed = [h["created_at"] for k, (h, _) in records.items() if k.startswith(f"status/{recipient}/revealed")]
    gaps = {}
    for pid, ti in tis.items():
        chain = [t for t in ORDER if t in ti and ti[t]["start"] is not None]
        gaps[pid] = {f"{a} -> {b}": ti[b]["start"] - ti[a]["end"] for a, b in zip(chain, chain[1:])}
    all_gaps = [g for party in gaps.values() for g in party.values()]
    return {
        "last_input_party": last_party,
        "last_publication": last_pub,
        "timeline": {
            pid: {t: {"start": ti[t]["start"], "end": ti[t]["end"]} for t in ORDER if t in ti}
            for pid, ti in tis.items()
        },
        "inputs_done_spread_s": max(done.values()) - min(done.values()),
        "compute": compute,
        "roster_after_s": min(rosters) - last_pub if rosters else None,  # the leader's part of the rendezvous
        "all_mpyc_running_after_s": max((c["mpyc_launch_after_s"] or 0) for c in compute.values()),
        "all_connected_after_s": max((c["mpyc_connected_after_s"] or 0) for c in compute.values()),
        "recipient": {
            "sensor_done_after_last_output_s": (
                rti["wait_for_result"]["end"] - max(outputs) if "wait_for_result" in rti else None
            ),
            "revealed_record_after_last_output_s": min(revealed) - max(outputs) if revealed else None,
            "reveal_done_after_last_output_s": rti["reveal"]["end"] - max(outputs),
        },
        "task_gaps_s": gaps,
        "task_gap_mean_s": sum(all_gaps) / len(all_gaps) if all_gaps else None,
        "task_gap_max_s": max(all_gaps) if all_gaps else None,
        "task_durations_s": {
            pid: {t: (v["end"] - v["start"]) if v["end"] and v["start"] else None for t, v in ti.items()}
            for pid, ti in tis.items()
        },
        "run_s": {
            pid: max(v["end"] for v in ti.values() if v["end"]) - min(v["start"] for v in ti.values() if v["start"])
            for pid, ti in tis.items()
        },
    }


def main(argv=None) -> int:
    """``python bench/coordination.py [--companies 5] [--computes 3] [--trips 5000] [--json FILE]``"""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--companies", type=int, default=5)
    parser.add_argument("--computes", type=int, default=3)
    parser.add_argument("--trips", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--wait-in-task",
        nargs="?",
        const="True",
        default="near",
        choices=("False", "near", "True"),
        help="[mpc] wait_in_task at every party (default: near, the product's default; no value: True)",
    )
    args = parser.parse_args(argv)
    import localnet

    with tempfile.TemporaryDirectory(prefix="mpc-coordination-") as tmp:
        s3 = localnet.S3Server(Path(tmp) / "s3").start()
        try:
            out = run_coordination(
                Path(tmp),
                s3,
                companies=args.companies,
                computes=args.computes,
                trips=args.trips,
                spark_master="local[*]",
                timeout=1800,
                wait_in_task=args.wait_in_task,
            )
        finally:
            s3.stop()
    summary = {
        k: out[k]
        for k in (
            "roster_after_s",
            "all_mpyc_running_after_s",
            "all_connected_after_s",
            "recipient",
            "compute",
            "task_gap_mean_s",
            "task_gap_max_s",
            "wall_s",
        )
    }
    print(json.dumps(summary, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
