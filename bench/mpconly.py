"""Table 1 (c), "MPC only": every trip's fare (and month) secret-shared into MPyC and aggregated there
(bench/programs/hhi_mpc_only.py), at a few small numbers of trips, fitted linearly and extrapolated.

Each company splits its own trips into Shamir shares (``mpc_federation.sharing.split``, as the
share stage does) and the compute parties run the real worker through ``launcher.run_mpc``. The
shares reach the workers through their job files, not through the bucket: the transport of
per-trip shares (which would be GBs at full scale) is left out, so the measured cost is a lower
bound for an MPC-only pipeline.
"""

from __future__ import annotations

import time
from math import gcd
from pathlib import Path

import numpy as np
from common import MPC_ONLY_PROGRAM, WorkerMonitor, all_at_once, datagen, hhi_reference, parse_worker_log


def sample_trips(data_dir: Path, companies: list[str], total: int, months: list[str]) -> dict[str, dict]:
    """The first trips of every company, in the companies' proportions: {company: {fare, month}}."""
    import pyarrow.parquet as pq

    counts = datagen().split_trips(total, companies)
    first = np.datetime64(months[0], "M")
    out = {}
    for company, n in counts.items():
        files = sorted((data_dir / company / "trips").glob("part-*.parquet"))
        fares, month_index = [], []
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(
                batch_size=max(1, n - len(fares)), columns=["fare_amount", "tpep_pickup_datetime"]
            ):
                fare = np.rint(batch.column("fare_amount").to_numpy(zero_copy_only=False) * 100).astype(np.int64)
                ts = batch.column("tpep_pickup_datetime").to_numpy(zero_copy_only=False).astype("datetime64[M]")
                idx = (ts - first).astype(np.int64)
                keep = (idx >= 0) & (idx < len(months))
                fares += fare[keep].tolist()
                month_index += idx[keep].tolist()
                if len(fares) >= n:
                    break
            if len(fares) >= n:
                break
        out[company] = {"fare": fares[:n], "month": month_index[:n]}
    return out


def plaintext(trips: dict[str, dict], n_months: int) -> list[str | None]:
    revenue = {}
    for company, t in trips.items():
        per_month = [0] * n_months
        for fare, month in zip(t["fare"], t["month"]):
            per_month[month] += fare
        revenue[company] = [sum(per_month), *per_month]
    return hhi_reference([[r[k] for r in revenue.values()] for k in range(n_months + 1)])


def run_mpc_only(
    trips: dict[str, dict],
    months: list[str],
    *,
    variant: str = "secret-month",
    computes: int = 3,
    chunk: int = 0,
    run_timeout: float = 3600,
) -> dict:
    """One MPC-only run over the given trips; returns timings, memory, bytes and the check."""
    import localnet

    from mpc_federation.launcher import MPCJob, run_mpc
    from mpc_federation.programs import load_program
    from mpc_federation.sharing import decode, input_payloads, recombine

    path = MPC_ONLY_PROGRAM if variant == "secret-month" else MPC_ONLY_PROGRAM.with_name("hhi_mpc_only_onehot.py")
    program = load_program(path).program
    t = (computes - 1) // 2
    n_months = len(months)
    if chunk <= 0:  # the largest chunk that divides every company's count (no padding), at most 1000
        chunk = 0
        for data in trips.values():
            chunk = gcd(chunk, len(data["fare"]))
        chunk = min(1000, chunk) or 1
    roster, companies_of, shares = [], [], [{} for _ in range(computes)]
    share_s = {}
    for company, data in trips.items():
        t0 = time.monotonic()
        n = len(data["fare"])
        for start in range(0, n, chunk):
            fares = data["fare"][start : start + chunk]
            month = data["month"][start : start + chunk]
            pad = chunk - len(fares)
            fares, month = fares + [0] * pad, month + [0] * pad
            if variant == "secret-month":
                inputs = {"fare_cents": fares, "month": month}
            else:
                inputs = {"fare_cents": fares, "month_onehot": [int(m == k) for m in month for k in range(n_months)]}
            name = f"{company}#{start // chunk}"
            for i, payload in enumerate(input_payloads(program, inputs, t, computes)):
                shares[i][name] = payload
            roster.append(name)
            companies_of.append(company)
        share_s[company] = time.monotonic() - t0

    input_lengths = {"fare_cents": chunk}
    input_lengths.update({"month": chunk} if variant == "secret-month" else {"month_onehot": chunk * n_months})
    dims = {"market": ["all", *months]}
    endpoints = [f"127.0.0.1:{port}" for port in localnet.free_ports(computes)]
    results, errors, wall = {}, {}, {}

    def party(i: int) -> None:
        job = MPCJob(
            program=str(path),
            party_index=i,
            endpoints=endpoints,
            threshold=t,
            roster=roster,
            shares=shares[i],
            input_lengths=input_lengths,
            output_lengths=program.output_lengths(dims),
            dims=dims,
            params={"companies": companies_of, "months": n_months},
            names=[f"compute_{j}" for j in range(computes)],
        )
        t0 = time.monotonic()
        try:
            # connect_timeout = run_timeout: the launcher may see the worker's 'connected' line only at
            # its next output (see the report), so a long silent computation must not count as connecting.
            results[i] = run_mpc(job, connect_timeout=run_timeout, run_timeout=run_timeout)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors[i] = exc
        wall[i] = time.monotonic() - t0

    with WorkerMonitor() as monitor:
        mpc_wall = all_at_once(party, [(i,) for i in range(computes)])
    if errors:
        raise RuntimeError(f"MPC-only run failed: {errors}")
    t0 = time.monotonic()
    values = recombine(program.modulus, {i: r.shares for i, r in results.items()}, t)
    hhi = decode(program, dims, values, {"decimals": 2})["hhi"]
    reveal_s = time.monotonic() - t0
    got = hhi["exact"]
    logs = {i: parse_worker_log(r.log_tail) for i, r in results.items()}
    trips_total = sum(len(d["fare"]) for d in trips.values())
    critical = max(share_s.values()) + mpc_wall + reveal_s
    return {
        "variant": variant,
        "trips": trips_total,
        "chunk": chunk,
        "computes": computes,
        "share_s": share_s,
        "mpc_wall_s": mpc_wall,
        "reveal_s": reveal_s,
        "critical_s": critical,
        "machine_s": sum(share_s.values()) + sum(wall.values()) + reveal_s,
        "peak_rss_mib": monitor.peak_mib(),
        "bytes_sent": {i: log.get("bytes_sent") for i, log in logs.items()},
        "worker_mpc_s": {i: log.get("worker_mpc_s") for i, log in logs.items()},
        "hhi": [None if x is None else str(x) for x in got],
        "equals_plaintext": got == plaintext(trips, n_months),
    }


def linear_fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares y = a + b x; returns (a, b)."""
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    if len(points) == 1:
        return 0.0, float(ys[0] / xs[0])
    b, a = np.polyfit(xs, ys, 1)
    return float(a), float(b)
