"""The HHI program across real MPyC processes (one per compute party, via the launcher), checked
against the exact plaintext value 10000 * sum(r^2) / (sum r)^2.

Only three MPyC runs: the known answers, a randomised run with extremes (100 input parties), and a
run with five compute parties (t = 2).
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from fractions import Fraction
from pathlib import Path

import localnet
import pytest

from mpc_federation.launcher import MPCJob, run_mpc
from mpc_federation.programs import load_program
from mpc_federation.sharing import decode, recombine, split

REPO = Path(__file__).resolve().parents[1]
HHI_PATH = REPO / "include" / "programs" / "hhi.py"
KNOWN_ANSWERS = REPO.parent / "shared" / "known_answers" / "hhi.json"
MAX_REVENUE = 10**12


@pytest.fixture(scope="module")
def hhi():
    return load_program(HHI_PATH).program


@pytest.fixture(autouse=True)
def _plain_tcp(monkeypatch):
    monkeypatch.delenv("MPC_TLS_DIR", raising=False)


def exact_hhi(revenues: list[int]) -> Fraction | None:
    total = sum(revenues)
    return None if total == 0 else Fraction(10000 * sum(r * r for r in revenues), total * total)


def run_hhi(program, markets: list[str], revenues: dict[str, list[int]], m: int, t: int,
            answering: list[int] | None = None) -> dict:
    """Share every party's vector, run the program on m MPyC processes, recombine and decode.

    :param revenues: {input party: [revenue per market]}.
    :param answering: the compute parties whose output shares the recipient uses (default: all).
    """
    dims = {"market": markets}
    shares: list[dict] = [{} for _ in range(m)]
    for party, vector in revenues.items():
        rows = split(program.field, vector, t, m)
        for i in range(m):
            shares[i][party] = {"revenue_cents": rows[i]}
    endpoints = [f"127.0.0.1:{localnet.free_port()}" for _ in range(m)]
    results, errors = {}, {}

    def party(i: int) -> None:
        job = MPCJob(program=str(HHI_PATH), party_index=i, endpoints=endpoints, threshold=t,
                     roster=list(revenues), shares=shares[i], input_lengths=program.input_lengths(dims),
                     output_lengths=program.output_lengths(dims), output_kinds={"hhi": "ratio"})
        try:
            results[i] = run_mpc(job, connect_timeout=60, run_timeout=120)
        except Exception as exc:  # reported below with every party's error
            errors[i] = exc

    threads = [threading.Thread(target=party, args=(i,)) for i in range(m)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert all(len(r.shares) == 2 * len(markets) for r in results.values())
    assert all(0 < r.connect_seconds <= r.total_seconds for r in results.values())
    # Output shares are a sharing: no single party's output is the masked pair itself.
    answering = list(range(m)) if answering is None else answering
    values = recombine(program.field, {i: results[i].shares for i in answering}, t)
    assert all(results[i].shares != values for i in range(m))
    return decode(program, dims, values)["hhi"]


def test_known_answers(hhi):
    cases = json.loads(KNOWN_ANSWERS.read_text())["cases"]
    assert len(cases) >= 5
    firms = max(len(c["revenues"]) for c in cases)
    # Pad with zero-revenue firms: they do not change the HHI. One extra party with zeros everywhere.
    padded = [c["revenues"] + [0] * (firms + 1 - len(c["revenues"])) for c in cases]
    revenues = {f"firm_{j}": [column[j] for column in padded] for j in range(firms + 1)}
    result = run_hhi(hhi, [c["name"] for c in cases], revenues, m=3, t=1)
    assert result["labels"] == [c["name"] for c in cases]
    for case, shown, approx in zip(cases, result["exact"], result["value"]):
        want = Fraction(case["exact"])
        assert exact_hhi(case["revenues"]) == want, case["name"]  # the file agrees with the formula
        assert Fraction(shown) == want, case["name"]
        assert shown == case["exact"], case["name"]
        assert approx == pytest.approx(float(want), abs=1e-6)


def test_random_and_extreme_markets(hhi):
    rng = random.Random(20240415)
    parties = 100
    markets: dict[str, list[int]] = {
        "all_max": [MAX_REVENUE] * parties,  # the bounds of the program: HHI 100
        "random_up_to_max": [rng.randint(0, MAX_REVENUE) for _ in range(parties)],
        "monopoly_at_max": [0] * 37 + [MAX_REVENUE] + [0] * (parties - 38),
        "monopoly_tiny": [0] * (parties - 1) + [1],
        "all_zero": [0] * parties,
        "one_big_rest_one": [MAX_REVENUE] + [1] * (parties - 1),
        "two_firms_coprime": [MAX_REVENUE - 1, MAX_REVENUE] + [0] * (parties - 2),
    }
    for k in range(5):
        firms = rng.randint(2, parties)
        scale = rng.choice([100, 10**6, MAX_REVENUE])
        column = [rng.randint(0, scale) for _ in range(firms)] + [0] * (parties - firms)
        rng.shuffle(column)
        markets[f"random_{k}_{firms}_firms"] = column
    labels = list(markets)
    revenues = {f"firm_{j:03d}": [markets[label][j] for label in labels] for j in range(parties)}
    # A recipient that heard from two of three compute parties still reconstructs exactly.
    result = run_hhi(hhi, labels, revenues, m=3, t=1, answering=[0, 2])
    for label, shown in zip(labels, result["exact"]):
        want = exact_hhi(markets[label])
        if want is None:
            assert shown is None, label
        else:
            assert Fraction(shown) == want, label
    got = dict(zip(labels, result["exact"]))
    assert got["all_max"] == "100"
    assert got["monopoly_at_max"] == got["monopoly_tiny"] == "10000"
    assert got["all_zero"] is None
    assert dict(zip(labels, result["value"]))["all_zero"] is None


def test_five_compute_parties(hhi):
    rng = random.Random(5)
    labels = ["all", "2024-01", "2024-02"]
    revenues = {f"firm_{j}": [rng.randint(0, MAX_REVENUE) for _ in labels] for j in range(4)}
    revenues["firm_dominant"] = [MAX_REVENUE] * 3
    result = run_hhi(hhi, labels, revenues, m=5, t=2)
    for k, label in enumerate(labels):
        assert Fraction(result["exact"][k]) == exact_hhi([v[k] for v in revenues.values()]), label


# -- the launcher's deadlines and failures (cheap: one or two MPyC processes) --------------------------
def one_party_job(program_path: Path, endpoints: list[str] | None = None) -> MPCJob:
    endpoints = endpoints or [f"127.0.0.1:{localnet.free_port()}"]
    return MPCJob(program=str(program_path), party_index=0, endpoints=endpoints, threshold=0, roster=["p"],
                  shares={"p": {"x": [1]}}, input_lengths={"x": 1}, output_lengths={"y": 1},
                  output_kinds={"y": "int"})


def write_program(tmp_path: Path, compute_body: str) -> Path:
    path = tmp_path / "slow_or_broken.py"
    path.write_text(
        "import time\n"
        "from mpc_federation.programs import Input, Output, SecureProgram\n"
        "def compute(mpc, secint, inputs, params):\n"
        f"    {compute_body}\n"
        "    return {'y': [inputs['x'][0][0]]}\n"
        "PROGRAM = SecureProgram(name='t', inputs=(Input('x', 0, 9),), outputs=(Output('y'),), compute=compute)\n")
    return path


def port_is_free(endpoint: str) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", int(endpoint.rsplit(":", 1)[1])))
            return True
        except OSError:
            return False


def test_launcher_single_party_runs(tmp_path):
    from mpc_federation.programs import load_program as load

    path = write_program(tmp_path, "pass")
    result = run_mpc(one_party_job(path), connect_timeout=30, run_timeout=60)
    field = load(path).program.field
    assert recombine(field, {0: result.shares}, 0) == [1]
    assert "mpc-worker: timings" in result.log_tail


def test_launcher_connect_deadline(tmp_path):
    from mpc_federation.launcher import MPCRunError

    endpoints = [f"127.0.0.1:{localnet.free_port()}" for _ in range(2)]
    job = one_party_job(HHI_PATH, endpoints)
    job.input_lengths, job.output_lengths, job.output_kinds = {"revenue_cents": 1}, {"hhi": 1}, {"hhi": "ratio"}
    job.shares = {"p": {"revenue_cents": [1]}}
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
