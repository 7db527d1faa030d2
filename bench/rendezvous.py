"""The two rendezvous through the real CoordinationTrigger (as Airflow's triggerer runs it)
against the real local S3 API server, with real MPyC over TLS in between:

1. every compute party's ``inputs`` trigger: latency from the last input party's ``done`` marker
   (its signed ``created_at``) to the trigger's "ready" event;
2. the recipient's ``result`` trigger while the compute parties run ``stages.compute``: latency
   from the last output shares (``created_at``) to its event;

and the S3 requests each waiting party makes (LIST and GET), per hour, while the rendezvous is far
(some parties still aggregating) and while it is near. The Airflow scheduling after the event
(resuming the deferred task) is not included: bench/coordination.py measures the whole night.

    .venv/bin/python bench/rendezvous.py [--far S] [--near S] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _per_hour(requests, before: dict, seconds: float) -> dict[str, dict[str, float]]:
    """Each waiting party's calls since ``before`` (``S3Requests.snapshot``), per hour."""
    return {
        party: {k: round(n * 3600 / seconds) for k, n in requests.since(before, party).items()}
        for party in requests.snapshot()
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--far", type=float, default=20.0, help="seconds with 1 of 5 input parties shared")
    parser.add_argument("--near", type=float, default=10.0, help="seconds with 4 of 5 shared")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]
    from common import S3Requests, log  # puts plugins/ and scripts/ on the path
    from mpcstages import make_federation, random_aggregates

    # isort: split
    import localnet

    from mpc_federation import stages
    from mpc_federation.waiting import ACTIVE_SECONDS
    from mpc_operators.hooks import COORDINATION_CONN_ID
    from sensors.triggers import CoordinationTrigger

    with tempfile.TemporaryDirectory(prefix="mpc-rendezvous-") as tmp:
        s3 = localnet.S3Server(Path(tmp) / "s3").start()
        os.environ[f"AIRFLOW_CONN_{COORDINATION_CONN_ID.upper()}"] = json.dumps(s3.connection())
        try:
            fed = make_federation(Path(tmp), s3, 5, 3, 1)
            aggregates = random_aggregates(fed)
            spec, runs = fed.spec, fed.runs
            run_key = runs[spec.leader.id].channel.run
            inputs = [p.id for p in spec.input_parties]
            computes = [c.id for c in spec.compute_parties]
            recipient = spec.recipients[0].id

            def trigger(party: str, stage: str) -> CoordinationTrigger:
                now = time.time()
                return CoordinationTrigger(
                    spec_path=str(spec.source),
                    party_id=party,
                    run=run_key,
                    stage=stage,
                    coordination_conn_id=COORDINATION_CONN_ID,
                    deadline=now + 600,
                    cutoff=now + 600,
                )

            async def wait(t: CoordinationTrigger) -> tuple[dict, float]:
                async for event in t.run():
                    return event.payload, time.time()
                raise RuntimeError("trigger ended without an event")

            def done_at(party: str) -> float:
                ch = runs[recipient].channel
                return ch.verified().headers[ch.input_done_key(party)]["created_at"]

            async def scenario(counter: S3Requests) -> dict:
                waiting = {p: asyncio.ensure_future(wait(trigger(p, "inputs"))) for p in computes}
                result_wait = asyncio.ensure_future(wait(trigger(recipient, "result")))
                await asyncio.sleep(1.0)
                await asyncio.to_thread(stages.share, runs[inputs[0]], aggregates[inputs[0]])
                await asyncio.sleep(ACTIVE_SECONDS + 2)  # the trigger polls fast for a minute after news
                t0, c0 = time.time(), counter.snapshot()
                await asyncio.sleep(args.far)  # far: one input party of five shared, nothing new for a minute
                far = _per_hour(counter, c0, time.time() - t0)
                for p in inputs[1:4]:
                    await asyncio.to_thread(stages.share, runs[p], aggregates[p])
                t0, c0 = time.time(), counter.snapshot()
                await asyncio.sleep(args.near)  # near: four of five shared
                near = _per_hour(counter, c0, time.time() - t0)
                await asyncio.to_thread(stages.share, runs[inputs[4]], aggregates[inputs[4]])
                last_input = done_at(inputs[4])
                ready = {p: await f for p, f in waiting.items()}
                input_latency = {p: round(at - last_input, 3) for p, (event, at) in ready.items()}
                t_compute, c_compute = time.time(), counter.snapshot()
                threads = [threading.Thread(target=stages.compute, args=(runs[p],)) for p in computes]
                for th in threads:
                    th.start()
                event, at = await result_wait
                for th in threads:
                    await asyncio.to_thread(th.join)
                during = _per_hour(counter, c_compute, at - t_compute)
                ch = runs[recipient].channel
                view = ch.verified()
                attempt = ch.live_attempt(view.keys)
                last_output = max(view.headers[ch.output_key(attempt, c, recipient)]["created_at"] for c in computes)
                return {
                    "inputs_event": {p: e for p, (e, _) in ready.items()},
                    "input_latency_s": input_latency,
                    "result_event": event,
                    "result_latency_s": round(at - last_output, 3),
                    "requests_per_hour_far": far,
                    "requests_per_hour_near": near,
                    "requests_per_hour_result_wait": during.get(recipient),
                }

            with S3Requests(per_reader=True) as counter:
                out = asyncio.run(scenario(counter))
        finally:
            s3.stop()
    log(json.dumps(out, default=str))
    print(json.dumps(out, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
