"""The HHI program across real MPyC processes (one per compute party, via the launcher): the
revealed HHI equals the plaintext HHI rounded to the declared precision, on the repository's known
answers, extremes, rounding boundaries and randomised markets; what it reveals is only that value
(issue: exact fractions gave away market totals); thin markets are suppressed; and inputs outside
their declared ranges are refused inside the MPC, naming the party, with nothing revealed.
"""

from __future__ import annotations

import json
import random
import socket
import time
from decimal import Decimal
from pathlib import Path

import localnet
import pytest
from mpcrun import compute_jobs, federation_program, run_program

from mpc_federation.arith import plain_round_div
from mpc_federation.launcher import MPCJob, MPCRefused, run_mpc
from mpc_federation.programs import load_program
from mpc_federation.sharing import input_payloads, pack, recombine, split, unpack, width

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "include" / "programs"
HHI_PATH = PROGRAMS / "hhi.py"
KNOWN_ANSWERS = Path(__file__).resolve().parent / "data" / "hhi_known_answers.json"
MAX_REVENUE = 2**40 - 1


def rounded_hhi(revenues: list[int], decimals: int = 2, k: int = 3) -> Decimal | None:
    """The plaintext reference: 10000 * sum r^2 / (sum r)^2 rounded half up, None below k firms."""
    if sum(1 for r in revenues if r) < k:
        return None
    q = plain_round_div(10 ** (4 + decimals) * sum(r * r for r in revenues), sum(revenues) ** 2)
    return Decimal(q).scaleb(-decimals)


def run_hhi(markets: list[str], revenues: dict[str, list[int]], m: int = 3, t: int = 1, **kwargs) -> dict:
    return run_program(
        HHI_PATH, {"market": markets}, {p: {"revenue_cents": v} for p, v in revenues.items()}, m=m, t=t, **kwargs
    )


def revealed(result: dict) -> list[Decimal | None]:
    return [None if x is None else Decimal(x) for x in result["hhi"]["exact"]]


def test_known_answers():
    """The repository's known answers (exact fractions), rounded to hundredths, in one MPC run."""
    cases = [c for c in json.loads(KNOWN_ANSWERS.read_text())["cases"] if len(c["revenues"]) >= 3]
    width = max(len(c["revenues"]) for c in cases)
    revenues = {f"firm_{j}": [(c["revenues"] + [0] * width)[j] * 10**9 for c in cases] for j in range(width)}
    result = run_hhi([c["name"] for c in cases], revenues)
    for k, case in enumerate(cases):
        num, _, den = case["exact"].partition("/")
        assert revealed(result)[k] == Decimal(plain_round_div(100 * int(num), int(den or 1))).scaleb(-2), case["name"]
    assert result["hhi"]["exact"][:3] == ["2600.00", "3200.00", "2000.00"]
    assert result["suppressed"]["exact"] == ["0"] * len(cases)


def tie_cases() -> list[list[int]]:
    """Three-firm markets whose HHI in hundredths sits exactly on .5 (a rounding boundary), and
    their neighbours one cent away."""
    ties = []
    for a in range(1, 200):
        for b in range(1, a + 1):
            c = 1
            s, t2 = a * a + b * b + c * c, (a + b + c) ** 2
            if (2 * 10**6 * s) % (2 * t2) == t2:  # 10**6 s / t^2 = q + 1/2 exactly
                ties.append([a, b, c])
        if len(ties) >= 4:
            break
    return ties + [[a + 1, b, c] for a, b, c in ties[:2]] + [[a, b, c + 1] for a, b, c in ties[:2]]


def test_extremes_boundaries_and_random_markets():
    """100 firms at the declared maximum, near-monopoly, near-equal firms, exact ties (rounded up)
    and their neighbours, and random markets: the revealed value equals the plaintext rounded."""
    rng = random.Random(20241201)
    ties = tie_cases()
    assert len(ties) >= 4
    columns = {
        "max_100_firms": [MAX_REVENUE] * 100,
        "near_monopoly": [MAX_REVENUE, 1, 1] + [0] * 97,
        "near_equal": [MAX_REVENUE - j for j in range(100)],
        "one_cent_each": [1] * 100,
        **{f"tie_{i}": tie + [0] * 97 for i, tie in enumerate(ties)},
        **{
            f"random_{i}": [rng.choice([0, rng.randint(1, 2 ** rng.randint(1, 40) - 1)]) for _ in range(100)]
            for i in range(6)
        },
    }
    labels = list(columns)
    revenues = {f"firm_{j}": [columns[label][j] for label in labels] for j in range(100)}
    result = run_hhi(labels, revenues, timeout=600)
    for k, label in enumerate(labels):
        assert revealed(result)[k] == rounded_hhi(columns[label]), label
    assert result["hhi"]["exact"][:4] == ["100.00", "10000.00", "100.00", "100.00"]
    exact_ties = [Decimal(10**6 * sum(x * x for x in t)) / Decimal(sum(t) ** 2) for t in ties[:4]]
    assert all(v % 1 == Decimal("0.5") for v in exact_ties)  # they really are ties (in hundredths)
    assert revealed(result)[4:8] == [Decimal(int(v) + 1).scaleb(-2) for v in exact_ties]  # rounded up


@pytest.mark.parametrize("decimals", [0, 4])
def test_extremes_of_the_smallest_federation_in_its_own_field(decimals):
    """Three firms compute in the smallest field of the HHI (``for_federation``: SecInt(101) at 0
    decimals, SecInt(114) at 4, against the declared SecInt(124)); the declared maxima, a near
    monopoly and random markets still come out exactly as the plaintext rounds them."""
    sized = federation_program(HHI_PATH, {"decimals": decimals}, 3)
    assert sized.bit_length == {0: 101, 4: 114}[decimals] < load_program(HHI_PATH).program.bit_length
    rng = random.Random(decimals)
    columns = {
        "max": [MAX_REVENUE] * 3,
        "near_monopoly": [MAX_REVENUE, 1, 1],
        "max_and_small": [MAX_REVENUE, MAX_REVENUE - 1, 12345],
        **{f"random_{i}": [rng.randint(1, 2 ** rng.randint(1, 40) - 1) for _ in range(3)] for i in range(5)},
    }
    labels = list(columns)
    revenues = {f"firm_{j}": [columns[label][j] for label in labels] for j in range(3)}
    result = run_hhi(labels, revenues, params={"decimals": decimals})
    assert revealed(result) == [rounded_hhi(columns[label], decimals) for label in labels]


def test_what_is_revealed_is_only_the_rounded_value():
    """Two input sets with different totals and sums of squares whose HHIs round to the same
    value: the recipient gets identical results (before: the exact fraction gave the total away)."""
    first = [300_000_000_003, 200_000_000_001, 100_000_000_000]  # 3888.888... -> 3888.89
    second = [600_000_000_010, 400_000_000_002, 200_000_000_000]  # twice the market, nearly
    assert rounded_hhi(first) == rounded_hhi(second) == Decimal("3888.89")
    assert sum(first) != sum(second) and sum(x * x for x in first) != sum(x * x for x in second)
    results = [run_hhi(["all"], {f"firm_{j}": [v[j]] for j in range(3)}) for v in (first, second)]
    assert results[0] == results[1]
    assert results[0]["hhi"]["exact"] == ["3888.89"]


def test_a_month_with_two_firms_is_suppressed():
    """The per-market floor counts firms with revenue in that market, not roster members."""
    revenues = {"firm_a": [500, 500, 0], "firm_b": [300, 300, 0], "firm_c": [200, 0, 7]}
    result = run_hhi(["all", "2024-01", "2024-02"], revenues)
    assert result["hhi"]["exact"] == ["3800.00", None, None]
    assert result["suppressed"]["exact"] == ["0", "1", "1"]
    assert revealed(run_hhi(["2024-01"], {"a": [500], "b": [300], "c": [0]}, params={"k": 2})) == [Decimal("5312.50")]


def test_precision_is_declarable():
    revenues = {"a": [5], "b": [4], "c": [3], "d": [2], "e": [1]}  # 22000/9 = 2444.444...
    for decimals, shown in [(0, "2444"), (2, "2444.44"), (4, "2444.4444")]:
        assert run_hhi(["all"], revenues, params={"decimals": decimals})["hhi"]["exact"] == [shown]


def test_five_compute_parties():
    rng = random.Random(7)
    labels = ["all", "2024-01", "2024-02"]
    revenues = {f"firm_{j}": [rng.randint(1, MAX_REVENUE) for _ in labels] for j in range(4)}
    revenues["firm_dominant"] = [MAX_REVENUE] * 3
    result = run_hhi(labels, revenues, m=5, t=2)
    for k, label in enumerate(labels):
        assert revealed(result)[k] == rounded_hhi([v[k] for v in revenues.values()]), label


# -- inputs outside their declared ranges, refused inside the MPC -------------------------------------------
def forged(program, honest: dict[str, list[int]], lie: dict[str, list[int]], m: int = 3) -> list[dict]:
    """An input party's payloads whose values are ``lie`` but whose witness is that of ``honest``
    (the best a cheater can do: no witness exists for an out-of-range value)."""
    payloads = input_payloads(program, honest, 1, m)
    for name, vector in lie.items():
        for i, row in enumerate(split(program.field, vector, 1, m)):
            payloads[i]["values"][name] = pack(row, program.modulus)
    return payloads


def refusals(path: Path, dims: dict, parties: dict, payloads: dict, m: int = 3) -> list[Exception]:
    errors = []
    with pytest.raises(MPCRefused) as info:
        run_program(path, dims, parties, payloads=payloads, m=m)
    errors.append(info.value)
    return errors


@pytest.mark.parametrize(
    "lie,m",
    [("count_women_2_to_40", 3), ("women_claimed_where_there_are_none", 3), ("count_women_2_to_40", 4)],
)
def test_an_input_outside_its_range_is_refused(lie, m):
    """The pay-gap attack: a company sending count_women = 2**40 (or claiming to have women where it
    has none, to pass the "k companies" floor) used to turn suppression off and reveal a level
    with a single real company. Now every compute party refuses, naming only the cheater; nothing
    is revealed; with honest inputs the same run succeeds. With 4 compute parties (t = 1) the
    checks' single resharing takes 3 of the 4 shares, a window that changes with the program counter."""
    program = load_program(PROGRAMS / "pay_gap.py").program
    levels = {"level": ["all", "L1"]}
    honest = {  # L1 has women in company_a only: suppressed
        "company_a": {
            "salary_sum_men": [900, 500],
            "salary_sum_women": [800, 123456789],
            "count_men": [9, 5],
            "count_women": [8, 2],
        },
        "company_b": {
            "salary_sum_men": [700, 0],
            "salary_sum_women": [600, 0],
            "count_men": [7, 0],
            "count_women": [6, 0],
        },
        "company_c": {
            "salary_sum_men": [500, 0],
            "salary_sum_women": [400, 0],
            "count_men": [5, 0],
            "count_women": [4, 0],
        },
    }
    if lie == "count_women_2_to_40":
        payloads = {"company_c": forged(program, honest["company_c"], {"count_women": [4, 2**40]}, m)}
    else:  # z = 1 ("has women") with count 0: the witness of a count of 1, the value of 0
        payloads = {
            "company_b": forged(program, {**honest["company_b"], "count_women": [6, 1]}, {"count_women": [6, 0]})
        }
    cheater = next(iter(payloads))
    endpoints_errors = refusals(PROGRAMS / "pay_gap.py", levels, honest, payloads, m)
    assert all(cheater in e.reason and "outside their declared ranges" in e.reason for e in endpoints_errors)
    for other in set(honest) - {cheater}:
        assert all(other not in e.reason for e in endpoints_errors)
    result = run_program(PROGRAMS / "pay_gap.py", levels, honest, m=m)  # the cause removed
    assert result["suppressed"]["exact"] == ["0", "1"]
    assert result["mean_gap_cents"]["exact"][1] is None and result["women_to_men_ratio"]["exact"][1] is None


def test_the_input_checks_span_chunks():
    """More values than the worker checks at once (``witnesses.CHUNK``, which bounds its memory):
    a value outside its range in the last chunk is refused, naming only its party; with honest
    inputs every cell is summed exactly (the nonzero indicators kept from every chunk)."""
    from mpc_federation.witnesses import CHUNK

    program = load_program(PROGRAMS / "sum.py").program
    rng = random.Random(11)
    n = CHUNK + 3
    labels = [f"m{i}" for i in range(n)]
    honest = {p: {"value": [rng.choice([0, rng.randint(-(2**50), 2**50 - 1)]) for _ in labels]} for p in "abc"}
    honest["a"]["value"][-1] = honest["b"]["value"][-1] = honest["c"]["value"][-1] = 7
    lie = {"value": honest["b"]["value"][:-1] + [2**50]}  # one past the range, in the second chunk
    with pytest.raises(MPCRefused) as info:
        run_program(PROGRAMS / "sum.py", {"market": labels}, honest, payloads={"b": forged(program, honest["b"], lie)})
    assert "the inputs of b are outside their declared ranges" in info.value.reason
    assert "the inputs of a" not in info.value.reason and ", c" not in info.value.reason
    result = run_program(PROGRAMS / "sum.py", {"market": labels}, honest)
    expected = load_program(PROGRAMS / "sum.py").module.plaintext(list(honest.values()))
    assert [None if x is None else int(x) for x in result["total"]["exact"]] == expected["total"]
    assert result["total"]["exact"][-1] == "21"


def test_a_negative_revenue_is_refused():
    """Revenues are checked to lie in [0, 2**40 - 1] inside the MPC: a firm cannot cancel others."""
    program = federation_program(HHI_PATH, None, 3)  # the three firms' field
    honest = {"a": [500, 10], "b": [300, 20], "c": [200, 30]}
    payloads = {"b": forged(program, {"revenue_cents": [300, 20]}, {"revenue_cents": [-500, 20]})}
    with pytest.raises(MPCRefused, match="the inputs of b are outside their declared ranges"):
        run_hhi(["all", "2024-01"], honest, payloads=payloads)
    assert run_hhi(["all", "2024-01"], honest)["hhi"]["exact"] == ["3800.00", "3888.89"]


@pytest.mark.parametrize("what", ["a JSON list to every compute party", "a short vector to compute party 1 only"])
def test_shares_that_are_not_packed_vectors_of_the_run_are_refused(what):
    """An input party (or a release of another encoding) sending something other than packed
    vectors of shares of the run's lengths (``sharing.pack``), to every compute party or to one
    only: every compute party refuses in the agreement exchange, naming that party only, before
    any share is used; the same run with its honest shares succeeds."""
    program = federation_program(HHI_PATH, None, 3)  # the three firms' field
    honest = {"a": [500, 10], "b": [300, 20], "c": [200, 30]}
    bad = input_payloads(program, {"revenue_cents": honest["b"]}, 1, 3)
    if what.startswith("a JSON list"):
        for i in range(3):
            bad[i]["values"]["revenue_cents"] = [300, 20]  # as the previous release sent them
        found = "compute_1 got from b: values of revenue_cents: a vector of shares must be packed text, not list"
    else:
        witness = unpack(bad[1]["witness"]["revenue_cents"], program.modulus)
        bad[1]["witness"]["revenue_cents"] = pack(witness[:-1], program.modulus)
        found = "compute_1 got from b: witness of revenue_cents: 83 shares, expected 84"
    with pytest.raises(MPCRefused) as info:  # by the first compute party, told by the others
        run_hhi(["all", "2024-01"], honest, payloads={"b": bad})
    text = info.value.reason
    assert "the shares of b are not vectors of shares of this run and release" in text, text
    assert found in text
    assert ("compute_0 got from b" in text) == what.startswith("a JSON list")
    assert "got from a" not in text and "got from c" not in text
    assert run_hhi(["all", "2024-01"], honest)["hhi"]["exact"] == ["3800.00", "3888.89"]


def test_shares_written_as_integers_beyond_the_modulus_count_as_their_residues():
    """A packed share is any integer of the field's width: an input party may write ``s + p`` for
    a share ``s`` where that fits, in its values and in its witness. Every compute party reads it
    as ``s``: the checks pass and the result is the honest one."""
    program = federation_program(HHI_PATH, None, 3)  # the three firms' field
    p, room = program.modulus, 256 ** width(program.modulus)
    honest = {"a": [500, 10], "b": [300, 20], "c": [200, 30]}
    payloads = input_payloads(program, {"revenue_cents": honest["b"]}, 1, 3)
    lifted = 0
    for payload in payloads:
        for part in ("values", "witness"):
            shares = unpack(payload[part]["revenue_cents"], p)
            raised = [s + p if s + p < room else s for s in shares]
            lifted += sum(r != s for r, s in zip(raised, shares))
            payload[part]["revenue_cents"] = pack(raised, p)
    assert lifted > 100  # most of the 3 x 86 shares are written beyond p
    assert run_hhi(["all", "2024-01"], honest, payloads={"b": payloads})["hhi"]["exact"] == ["3800.00", "3888.89"]


# -- the launcher's deadlines and failures (cheap: one or two MPyC processes) --------------------------
def one_party_job(program_path: Path, endpoints: list[str] | None = None) -> MPCJob:
    endpoints = endpoints or [f"127.0.0.1:{localnet.free_port()}"]
    program = load_program(program_path).program
    name = program.inputs[0].name
    shares = {"p": input_payloads(program, {name: [1]}, 0, 1)[0]}
    return MPCJob(
        program=str(program_path),
        party_index=0,
        endpoints=endpoints,
        threshold=0,
        roster=["p"],
        shares=shares,
        input_lengths={name: 1},
        output_lengths={o.name: 1 for o in program.outputs},
        dims={},
        params=program.params(None),
        names=["p"],
    )


def write_program(tmp_path: Path, compute_body: str) -> Path:
    path = tmp_path / "slow_or_broken.py"
    path.write_text(
        "import time\n"
        "from mpc_federation.programs import Input, Output, SecureProgram\n"
        "def compute(mpc, secint, inputs, params):\n"
        f"    {compute_body}\n"
        "    return {'y': inputs['x'].sum(axis=0)}\n"
        "PROGRAM = SecureProgram(name='t', inputs=(Input('x', 0, 9),), outputs=(Output('y'),), compute=compute)\n"
    )
    return path


def port_is_free(endpoint: str) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", int(endpoint.rsplit(":", 1)[1])))
            return True
        except OSError:
            return False


def test_the_job_file_is_private_and_what_json_dump_writes(tmp_path):
    """The launcher writes the job piece by piece (one input party's shares at a time): the same
    text as one ``json.dumps``, readable only by this user, and never over an existing file."""
    import os
    import stat

    from mpc_federation.launcher import _write_private

    job = {
        "roster": ["company_a", "company_b"],
        "shares": {"company_a": {"values": {"revenue_cents": [1, 2**150]}}, "company_b": {"values": {}}},
        "threshold": 1,
        "agreement": {"seen": ["company_a"], "nested": {"deeper": [None, True]}},
    }
    path = tmp_path / "job.json"
    _write_private(path, job)
    assert path.read_text() == json.dumps(job) and json.loads(path.read_text()) == job
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        _write_private(path, job)


def test_launcher_single_party_runs(tmp_path):
    from mpc_federation.programs import load_program as load

    path = write_program(tmp_path, "pass")
    result = run_mpc(one_party_job(path), connect_timeout=30, run_timeout=60)
    assert recombine(load(path).program.modulus, {0: result.shares}, 0) == [1]
    assert "mpc-worker: timings" in result.log_tail


def test_launcher_connect_deadline(tmp_path):
    from mpc_federation.launcher import MPCRunError

    endpoints = [f"127.0.0.1:{localnet.free_port()}" for _ in range(2)]
    job = one_party_job(HHI_PATH, endpoints)
    with pytest.raises(MPCRunError, match="did not all connect within 2 s"):
        run_mpc(job, connect_timeout=2, run_timeout=60)
    assert port_is_free(endpoints[0])  # the MPyC process group was killed


def test_launcher_run_deadline(tmp_path):
    from mpc_federation.launcher import MPCRunError

    job = one_party_job(write_program(tmp_path, "time.sleep(120)"))
    start = time.monotonic()
    with pytest.raises(MPCRunError, match="did not finish within 3 s"):
        run_mpc(job, connect_timeout=30, run_timeout=3)
    assert time.monotonic() - start < 10
    assert port_is_free(job.endpoints[0])


def test_launcher_reports_a_crashing_program(tmp_path):
    from mpc_federation.launcher import MPCRunError

    job = one_party_job(write_program(tmp_path, "raise ValueError('bad program 1234')"))
    with pytest.raises(MPCRunError) as info:
        run_mpc(job, connect_timeout=30, run_timeout=60)
    assert "exited with code" in str(info.value) and "bad program 1234" in str(info.value)


def test_a_compute_party_that_hangs_up_mid_run_stops_the_others_at_once(tmp_path):
    """compute_2's MPyC process exits as the program starts (a crash, a kill): the other two stop at
    once with an error naming it, instead of waiting for its messages until the run's deadline (MPyC
    forgets a connection closed cleanly and waits on); the run succeeds once compute_2 stays."""
    from mpc_federation.launcher import MPCRunError

    parties = {"a": {"x": [1]}, "b": {"x": [2]}, "c": {"x": [3]}}
    path = write_program(tmp_path, "mpc.pid == 2 and __import__('os')._exit(9)")
    errors: dict[int, Exception] = {}
    with pytest.raises(MPCRunError):
        run_program(path, {}, parties, timeout=120, errors=errors)
    assert sorted(errors) == [0, 1, 2], errors
    assert "exited with code 9" in str(errors[2])
    for i in (0, 1):
        assert isinstance(errors[i], MPCRunError) and "did not finish" not in str(errors[i]), errors[i]
        assert "exited with code 1: compute_2 closed its connection" in str(errors[i]), errors[i]  # named first
    write_program(tmp_path, "pass")
    assert run_program(path, {}, parties)["y"]["exact"] == ["6"]


def test_processes_waiting_for_their_job_end_when_a_peer_hangs_up(tmp_path):
    """MPyC processes started ahead of their job (a compute task that waits itself) hold idle
    connections. When one is stopped (its task failed or was killed), the others end at once, so a
    stage starts a fresh one (``MPCProcess.running``) instead of handing its job to a process tied to
    a peer that is gone; a process handed its job anyway says which peer hung up."""
    import psutil

    from mpc_federation.launcher import MPCRunError, seat_of, start_mpc

    jobs = compute_jobs(write_program(tmp_path, "pass"), {}, {"a": {"x": [1]}, "b": {"x": [2]}, "c": {"x": [3]}})
    processes = [start_mpc(**seat_of(job)) for job in jobs]
    try:
        pids = [int((p.work_dir / "worker.pid").read_text()) for p in processes]

        def links(pid: int) -> int:
            return sum(c.status == psutil.CONN_ESTABLISHED for c in psutil.Process(pid).net_connections("tcp"))

        deadline = time.monotonic() + 60
        while not all(links(pid) >= 2 for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(links(pid) >= 2 for pid in pids), "the three MPyC processes did not connect"
        processes[2].stop()
        deadline = time.monotonic() + 60
        while any(p.running() for p in processes[:2]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(p.running() for p in processes[:2]), "a process waiting for its job outlived its peer"
        with pytest.raises(MPCRunError, match="exited with code 1: compute_2 closed its connection"):
            processes[0].run(jobs[0], connect_timeout=30, run_timeout=30)
    finally:
        for p in processes:
            p.stop()
