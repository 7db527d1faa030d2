"""Run a secure program across real MPyC processes (one per compute party, via the launcher),
without a bucket: the input parties' payloads are built as ``share`` builds them (values and
witnesses), and the recipient's decoding is the one ``reveal`` uses."""

from __future__ import annotations

import threading
from pathlib import Path

import localnet

from mpc_federation.launcher import MPCJob, run_mpc
from mpc_federation.programs import load_program
from mpc_federation.sharing import decode, input_payloads, recombine


def run_program(
    path: Path,
    dims: dict[str, list[str]],
    parties: dict[str, dict[str, list[int]]],
    params: dict | None = None,
    m: int = 3,
    t: int = 1,
    payloads: dict | None = None,
    withheld: list | None = None,
    timeout: float = 300,
    errors: dict[int, Exception] | None = None,
) -> dict:
    """Share every party's input vectors, run the program on m MPyC processes, recombine and decode.

    :param parties: {input party: {input name: vector}}, in roster order.
    :param payloads: {input party: [payload per compute party]} to use instead of honest ones
        (an input party that lies about its witness).
    :param errors: a dict that receives every compute party's error, by index.
    :return: the decoded outputs (see ``sharing.decode``); raises the first compute party's error.
    """
    jobs = compute_jobs(path, dims, parties, params, m, t, payloads, withheld)
    results: dict = {}
    errors = {} if errors is None else errors

    def compute_party(i: int) -> None:
        try:
            results[i] = run_mpc(jobs[i], connect_timeout=60, run_timeout=timeout)
        except Exception as exc:  # reported below with every party's error
            errors[i] = exc

    threads = [threading.Thread(target=compute_party, args=(i,)) for i in range(m)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[min(errors)]
    program = federation_program(path, params, len(parties))
    values = recombine(program.modulus, {i: r.shares for i, r in results.items()}, t)
    return decode(program, dims, values, jobs[0].params, withheld or [])


def federation_program(path: Path, params: dict | None, input_parties: int):
    """The program at ``path`` in the field a federation of ``input_parties`` input parties with
    ``params`` computes in (``SecureProgram.for_federation``, as every party derives it)."""
    return load_program(path).program.for_federation(params, input_parties)


def compute_jobs(
    path: Path,
    dims: dict[str, list[str]],
    parties: dict[str, dict[str, list[int]]],
    params: dict | None = None,
    m: int = 3,
    t: int = 1,
    payloads: dict | None = None,
    withheld: list | None = None,
) -> list[MPCJob]:
    """Every compute party's job (``run_program``'s arguments), on free loopback ports; the
    compute parties are named ``compute_0``, ``compute_1``, ..."""
    program = federation_program(path, params, len(parties))
    checked = program.params(params)
    shares: list[dict] = [{} for _ in range(m)]
    for party, vectors in parties.items():
        rows = (payloads or {}).get(party) or input_payloads(program, vectors, t, m)
        for i in range(m):
            shares[i][party] = rows[i]
    endpoints = [f"127.0.0.1:{port}" for port in localnet.free_ports(m)]
    return [
        MPCJob.for_program(
            program,
            dims,
            program=str(path),
            party_index=i,
            endpoints=endpoints,
            threshold=t,
            roster=list(parties),
            shares=shares[i],
            params=checked,
            names=[f"compute_{j}" for j in range(m)],
            withheld=withheld or [],
        )
        for i in range(m)
    ]
