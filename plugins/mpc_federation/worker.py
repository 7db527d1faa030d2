"""The MPyC process of one compute party: ``python -m mpc_federation.worker --seat FILE --job FILE
--out FILE`` plus MPyC's own options (-M, -I, -P, -T, --ssl). Started by the launcher, never by hand.

It loads the program named in the seat file, connects and checks that every TLS connection
belongs to the seat it claims; then it waits for a ``go`` line on its standard input, and only
then reads the job (the roster, this party's shares). So it can start while the stage still fixes
the roster. With the job it checks that all
compute parties are about to do the same computation (session and views), and that every input
party's values lie in their declared ranges (``witnesses``); then it runs the program, zeroes
withheld cells, re-randomises the output sharings and writes this party's output shares.
Nothing is opened inside the MPC except per-party validity verdicts: only recipients recombine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import secrets
import sys
import time
from typing import TYPE_CHECKING, Any

from mpc_federation.agreement import AgreementError
from mpc_federation.agreement import check as check_agreement

if TYPE_CHECKING:
    import numpy as np

CONNECTED = "mpc-worker: connected"
REFUSED = "mpc-worker: refused:"  # followed by the reason; the launcher raises MPCRefused
HUNG_UP = "mpc-worker: hung up:"  # a connected peer closed its connection (install_hang_up_guard)
# The version of what the MPyC processes say to each other and compute (the input checks'
# coefficients, random bits, carry circuits) and of the input shares they read (``sharing.pack``):
# raised with every change there, so that compute parties on different releases refuse together
# instead of computing garbage or blaming inputs.
PROTOCOL = 13
# How long a refusing party waits at MPyC's shutdown barrier, which lets the others print their own
# refusal before its connections close; a peer that is gone (crashed, or an impostor that quit)
# never reaches the barrier.
REFUSAL_GRACE_SECONDS = 10.0


def _parse_own_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--seat", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--out", required=True)
    args, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]  # leave MPyC's options for MPyC
    return args


def check_seats(mpc, pinned: list[str], names: list[str]) -> None:
    """Every peer connection presented exactly the certificate pinned for the seat it claims.

    MPyC accepts any certificate the pinned set vouches for, on the accepting side for any seat
    the client announces; this closes that gap on both sides of every connection."""
    import ssl

    pinned_der = [ssl.PEM_cert_to_DER_cert(pem) for pem in pinned]
    for peer in mpc.parties:
        if peer.pid == mpc.pid:
            continue
        if peer.protocol is None:  # the peer hung up since connecting (e.g. it was refused on its side)
            raise AgreementError(
                f"the connection for the seat of {names[peer.pid]} closed before its certificate was checked"
            )
        ssl_object = peer.protocol.transport.get_extra_info("ssl_object")
        presented = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if presented != pinned_der[peer.pid]:
            owner = next((names[i] for i, der in enumerate(pinned_der) if der == presented), "a non-member")
            raise AgreementError(
                f"the connection for the seat of {names[peer.pid]} presented the TLS certificate of {owner}"
            )


async def _refuse_on_error(mpc, check) -> None:
    try:
        result = check()
        if asyncio.iscoroutine(result):
            await result
    except AgreementError as exc:
        print(f"{REFUSED} {exc}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(mpc.shutdown(), REFUSAL_GRACE_SECONDS)
        raise SystemExit(3) from None


def _unpack_shares(job: dict, program) -> list[list[str]]:
    """Every roster party's packed vectors of shares (``sharing.pack``), in place: its values as an
    object array of integers reduced mod p, its witness as the rows of bytes the checks read
    (``sharing.unpack_bytes``; ``_validate`` reduces the nonzero indicators it keeps); returns
    ``[input party, why]`` for every party whose shares are not packed vectors of the lengths the
    run's dimensions give (``_agree`` refuses on every compute party at once)."""
    from mpc_federation import witnesses
    from mpc_federation.sharing import unpack_array, unpack_bytes

    lengths = {}
    for spec_input in program.inputs:
        n = job["input_lengths"][spec_input.name]
        lengths[spec_input.name] = {"values": n, "witness": witnesses.layout(spec_input, n).size}
    wrong = []
    for party in job["roster"]:
        sent, where = job["shares"].get(party), "shares"
        kept: dict[str, dict[str, Any]] = {"values": {}, "witness": {}}
        job["shares"][party] = kept  # only the vectors checked here, nothing else the input party sent
        try:
            if not isinstance(sent, dict):
                raise ValueError("not a mapping of vectors")
            for name, parts in lengths.items():
                for part, length in parts.items():
                    where = f"{part} of {name}"
                    text, p = sent[part][name], program.modulus
                    vector = kept[part][name] = unpack_array(text, p) % p if part == "values" else unpack_bytes(text, p)
                    if len(vector) != length:
                        raise ValueError(f"{len(vector)} shares, expected {length}")
        except (ValueError, KeyError, TypeError) as exc:
            wrong.append([party, f"{where}: {exc if isinstance(exc, ValueError) else 'missing or malformed'}"])
    return wrong


def _secure_array(secint, shares):
    """A secure array of this party's shares: an object array of integers already reduced mod p."""
    return secint.array(secint.field.array(shares, check=False))


def _stacked(job: dict, part: str, name: str):
    """The roster's vectors ``job["shares"][party][part][name]`` (object arrays), one after the
    other in one object array."""
    import numpy as np

    return np.concatenate([job["shares"][party][part][name] for party in job["roster"]])


async def _validate(mpc, secint, program, job: dict, seed: bytes, witnesses) -> None:
    """Refuse, naming them, if any input party dealt shares that are not a sharing of degree t
    (``_check_degrees``) or if its values are outside their declared ranges (its shares are
    unpacked and of the run's lengths: ``_unpack_shares``, ``_agree``). Checks
    ``witnesses.CHUNK`` values of every party at a time; afterwards each party's witness is
    replaced by the verified nonzero indicators the program may use
    (``job["shares"][party]["nonzero"]``)."""
    import numpy as np

    from mpc_federation.sharing import integers

    roster = job["roster"]
    sent = [job["shares"][party] for party in roster]
    p, total = secint.field.modulus, np.zeros(len(roster), dtype=object)
    combined = np.zeros(len(roster), dtype=object)  # witnesses.linear, summed over inputs and chunks
    for spec_input in program.inputs:  # every party at once, CHUNK values at a time: bounded memory
        n = job["input_lengths"][spec_input.name]
        lay = witnesses.layout(spec_input, n)
        for start in range(0, n, witnesses.CHUNK):
            stop = min(start + witnesses.CHUNK, n)
            values = np.concatenate([s["values"][spec_input.name][start:stop] for s in sent])
            values = values.reshape((len(roster), stop - start))
            witness = np.stack([witnesses.part(s["witness"][spec_input.name], lay, start, stop) for s in sent])
            label = f"{spec_input.name}/{start}"
            total += witnesses.combinations(spec_input, values, witness, seed, label, p)
            combined += witnesses.linear(values, witness, seed, label, p)
        for shares in sent:  # keep the verified indicators, drop the rest of the witness
            witness = shares["witness"].pop(spec_input.name)
            kept = integers(witnesses.indicator(witness, lay)) % p if lay.nonzero else []
            shares.setdefault("nonzero", {})[spec_input.name] = kept
    if not any(job["input_lengths"][spec_input.name] for spec_input in program.inputs):
        return  # no values at all: nothing to check
    from mpc_federation import mpyc_compat

    await _check_degrees(mpc, secint, roster, combined % p)
    # Degree 2t, summed locally over every chunk and input: one resharing to degree t, then the test.
    valid = await mpc.np_is_zero_public(mpyc_compat.rerandomize(mpc, _secure_array(secint, total % p)))
    bad = [party for party, ok in zip(roster, np.atleast_1d(valid)) if not ok]
    if bad:
        raise AgreementError(
            f"the inputs of {', '.join(bad)} are outside their declared ranges "
            "(checked inside the MPC; nothing else is revealed)"
        )


async def _check_degrees(mpc, secint, roster: list[str], linear: np.ndarray) -> None:
    """Refuse, naming them, if any input party dealt a sharing not of degree t: ``linear`` is this
    party's share of a random linear combination of all of each input party's shares
    (``witnesses.linear``); each is masked with a fresh random sharing of degree t and every compute
    party sends its masked shares to every other, which check that they lie on one polynomial of
    degree t. The masked polynomials are uniformly random: nothing else is revealed. Before any
    input check is opened, so that none is ever taken on shares that are no sharing."""
    import numpy as np

    from mpc_federation import mpyc_compat
    from mpc_federation.sharing import ReconstructionError, recombine

    p = secint.field.modulus
    mask = await mpc.gather(mpyc_compat.random_sharings(mpc, secint, len(roster)))
    mine = [int(v) for v in (np.asarray(linear, dtype=object) + mask.value) % p]
    everyone = await mpc.transfer(mine)
    bad = []
    for i, party in enumerate(roster):
        try:
            recombine(p, {j: [shares[i]] for j, shares in enumerate(everyone)}, mpc.threshold)
        except ReconstructionError:
            bad.append(party)
    if bad:
        raise AgreementError(
            f"the shares of {', '.join(bad)} are not a sharing of degree t = {mpc.threshold}: they lie on no "
            "polynomial the threshold allows, so they share no value (checked inside the MPC on a masked "
            "random combination; nothing else is revealed)"
        )


async def _job(job_file: str) -> dict | None:
    """The job, once the launcher says ``go``; None if it closed the pipe without (the stage failed)."""
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != "go":
        return None
    with open(job_file) as f:
        return json.load(f)


async def _run(mpc, program, seat: dict, job_file: str) -> list[int] | None:
    """Connect and check the seats, wait for the job, agree on the session, check the inputs, run
    the program; returns this party's shares of the re-randomised outputs (None: no job came)."""
    from mpc_federation import witnesses

    secint = mpc.SecInt(program.bit_length, p=program.modulus)
    t0 = time.monotonic()
    await mpc.start()
    print(CONNECTED, flush=True)
    if seat.get("certificates"):
        await _refuse_on_error(mpc, lambda: check_seats(mpc, seat["certificates"], seat["names"]))
    waited = time.monotonic()
    job = await _job(job_file)
    if job is None:
        return None
    connected = time.monotonic()
    seed = await _agree(mpc, job, seat["names"], _unpack_shares(job, program))
    await _refuse_on_error(mpc, lambda: _validate(mpc, secint, program, job, seed, witnesses))
    validated = time.monotonic()
    result = program.compute(mpc, secint, _program_inputs(secint, program, job), job["params"])
    if asyncio.iscoroutine(result):
        result = await result
    shares = await mpc.gather(_fresh_outputs(mpc, secint, program, job, result))
    computed = time.monotonic()
    await mpc.shutdown()
    print(
        f"mpc-worker: timings connect={waited - t0:.3f}s idle={connected - waited:.3f}s "
        f"mpc={time.monotonic() - connected:.3f}s "
        f"checks={validated - connected:.3f}s program={computed - validated:.3f}s",
        flush=True,
    )
    return [int(s) for s in shares.value]


async def _agree(mpc, job: dict, names: list[str], malformed: list[list[str]] | None = None) -> bytes:
    """Refuse unless every compute party is about to do the same computation on well-formed
    shares; returns the seed of the input checks' coefficients, drawn only now, after every input
    was fixed (in the job).

    Peers that connected on the same ports but for another spec, run, attempt or roster must not
    compute together, nor peers on a release with another protocol: one exchange (one round)
    carries the protocol version, the session, the view, the input parties whose shares this
    party could not unpack (``_unpack_shares``: an input party may send garbage to one compute
    party only, and every one must refuse) and this party's share of the seed, before any share
    is used."""
    mine = [PROTOCOL, job["session"], job.get("agreement", {}), malformed or [], secrets.token_bytes(32)]
    exchanged = await mpc.transfer(mine)
    protocols, sessions, views, reports, tokens = (
        [x[i] if isinstance(x, list) and len(x) == len(mine) else None for x in exchanged] for i in range(len(mine))
    )  # anything malformed differs from every session

    def same_session():
        if len(set(map(repr, protocols))) != 1:
            versions = ", ".join(f"{name} {p!r}" for name, p in zip(names, protocols))
            raise AgreementError(
                f"compute parties run different versions of the secure protocol ({versions}): "
                "install the same release of mpc-federation on every compute party"
            )
        if len(set(sessions)) != 1:
            differ = [names[i] for i, s in enumerate(sessions) if s != sessions[0]]
            raise AgreementError(f"compute parties {', '.join(differ)} run another session than {names[0]}")
        found = [(names[i], *entry) for i, report in enumerate(reports) for entry in report or []]
        if not found:
            check_agreement(views, names)
            return
        parties = dict.fromkeys(party for _, party, _ in found)
        reason = (
            f"the shares of {', '.join(parties)} are not vectors of shares of this run and release "
            f"({'; '.join(f'{who} got from {party}: {why}' for who, party, why in found)}); no share was used"
        )
        try:  # the views may disagree too (such a share object has no sharing id, for one): say both
            check_agreement(views, names)
        except AgreementError as exc:
            reason = f"{reason}; and {exc}"
        raise AgreementError(reason)

    await _refuse_on_error(mpc, same_session)
    return hashlib.sha256(b"".join(t if isinstance(t, bytes) else b"" for t in tokens)).digest()


def _program_inputs(secint, program, job: dict):
    """The roster's shares as (parties, n) secure arrays per input, with the verified nonzero
    indicators of inputs that declare them."""
    from mpc_federation.programs import ProgramInputs

    roster = job["roster"]
    values, nonzero = {}, {}
    for spec_input in program.inputs:
        n = job["input_lengths"][spec_input.name]
        rows = _stacked(job, "values", spec_input.name)  # n each
        values[spec_input.name] = _secure_array(secint, rows).reshape((len(roster), n))
        if spec_input.nonzero:  # the verified indicators _validate kept
            z = _stacked(job, "nonzero", spec_input.name)
            nonzero[spec_input.name] = _secure_array(secint, z).reshape((len(roster), n))
    return ProgramInputs(values, nonzero, len(roster))


def _fresh_outputs(mpc, secint, program, job: dict, result: dict):
    """The declared outputs in order, withheld cells zeroed, as one freshly re-randomised sharing:
    recipients see a sharing independent of how the outputs were computed."""
    import numpy as np

    from mpc_federation import mpyc_compat

    withheld = {tuple(pair) for pair in job.get("withheld", [])}
    flat = []
    for output in program.outputs:
        length = job["output_lengths"][output.name]
        vector = result[output.name]
        if isinstance(vector, list):
            vector = mpc.np_fromlist([v if isinstance(v, secint) else secint(v) for v in vector])
        if vector.size != length:
            raise ValueError(f"program returned {vector.size} values for {output.name}, expected {length}")
        labels = job["dims"].get(output.dim, [output.name]) if output.dim else [output.name]
        keep = np.array([0 if (output.dim, label) in withheld else 1 for label in labels], dtype=object)
        flat.append(vector.reshape((length,)) * keep if not keep.all() else vector.reshape((length,)))
    return mpyc_compat.rerandomize(mpc, mpc.np_concatenate(flat))


def die_with_launcher() -> None:
    """Die with the task process that started this one, even when it is SIGKILLed (Linux)."""
    import ctypes
    import os
    import signal

    launcher = int(os.environ.get("MPC_LAUNCHER_PID", "0"))
    if sys.platform == "linux" and launcher:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != launcher:  # it died before the line above
            raise SystemExit("mpc-worker: the launching task is gone")


def main() -> None:
    die_with_launcher()
    args = _parse_own_args()
    with open(args.seat) as f:
        seat = json.load(f)
    from mpyc.runtime import mpc  # parses MPyC's options from sys.argv

    from mpc_federation import mpyc_compat
    from mpc_federation.programs import load_program

    mpyc_compat.install_speedups()
    mpyc_compat.install_hang_up_guard(seat["names"], HUNG_UP)
    program = load_program(seat["program"]).program
    program = program.with_bit_length(seat.get("bit_length") or program.bit_length)  # its federation's field
    shares = mpc.run(_run(mpc, program, seat, args.job))
    if shares is None:
        raise SystemExit("mpc-worker: stopped before its job was given")
    with open(args.out, "w") as f:
        f.write(json.dumps({"shares": shares}))  # in one piece, as the launcher writes the job


if __name__ == "__main__":
    main()
