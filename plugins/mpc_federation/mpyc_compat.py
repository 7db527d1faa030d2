"""The one place that uses MPyC internals, checked against the MPyC version it was written for.

Output sharings are re-randomised before they are released to recipients, so that the shares a
recipient gets are a fresh random sharing of the outputs, independent of how they were computed.
MPyC does this inside every multiplication (``_reshare``) but has no public call for it; the input
checks use the same call to bring their local degree-2t sums back to degree t.

The MPyC process also replaces some of MPyC's steps by the same arithmetic in fewer Python
operations: the split of every resharing and input (``install_fast_random_split``, with the input
parties' own ``limbs.split``: in machine words), the recombination of every resharing and output
(``install_fast_recombine``), the random signs behind MPyC's random bits and the random masks
of its comparisons, drawn in bulk (``install_bulk_random_bits``, ``install_bulk_randoms``); the
wrapping of every field array without a version check each time (``install_field_array_init``); and
the carry circuit of MPyC's bit decompositions by one with half the secure products
(``install_brent_kung_add_bits``). And it ends the process when a connected peer hangs up, instead
of waiting for that peer until the deadline (``install_hang_up_guard``).
"""

from __future__ import annotations

from typing import Any

import mpyc

WRITTEN_FOR = ("0.11",)


def check_version() -> None:
    if mpyc.__version__ not in WRITTEN_FOR:
        raise RuntimeError(
            f"mpc_federation uses MPyC internals written for MPyC {', '.join(WRITTEN_FOR)}; "
            f"this is MPyC {mpyc.__version__}: check mpyc_compat.rerandomize against it"
        )


def rerandomize(mpc, x):
    """A fresh random degree-t sharing of the secure array ``x`` (MPyC's resharing protocol), whose
    shares may also be those of a degree-2t sharing, e.g. a local product: MPyC's own products end so."""
    check_version()
    return mpc._reshare(x)


def random_sharings(mpc, secint, n: int) -> Any:
    """``n`` fresh random sharings of degree t as a secure array, every coefficient uniformly random
    (MPyC's own: PRSS, or with ``--no-prss`` the sum of t + 1 parties' random inputs), so opening all
    the shares of a value masked with one reveals only that the value's shares are of degree t."""
    check_version()
    return mpc._np_randoms(secint, n)


def install_fast_random_split() -> None:
    """Replace MPyC's ``thresha.np_random_split`` (one ``secrets.randbelow`` call per coefficient and
    an object-array matrix product: a third of the CPU time of a large vectorised program without
    PRSS, which reshares every product) by the same Shamir split in bulk and in machine words
    (``limbs.split``): for a vector of ``limbs.SMALL`` values or more one ``limbs.Words`` per party,
    which MPyC pickles and sends as it is, and which the installed ``np_recombine`` sums in machine
    words too."""
    check_version()
    from mpyc import thresha

    if getattr(thresha.np_random_split, "_bulk", False):
        return

    from mpc_federation import limbs

    def np_random_split(field, s, t, m):
        p = field.modulus
        if not isinstance(p, int) or field.order != p:
            return original(field, s, t, m)
        return limbs.split(s.value if isinstance(s, field.array) else s, p, t, m)

    original = thresha.np_random_split
    np_random_split._bulk = True  # type: ignore[attr-defined]  # marks the patch as applied
    thresha.np_random_split = np_random_split


def install_field_array_init() -> None:
    """Replace ``FiniteFieldArray.__init__``, which parses numpy's version string (twice, with
    regular expressions) every time it wraps an array, by the same wrapping with that comparison made
    once: about 15 us of a 15 us call, and a field array is made for every operation on shares (for
    a program over a few markets, about a quarter of the MPyC process's CPU, more with more parties)."""
    check_version()
    import numpy as np
    from mpyc import finfields

    cls = finfields.FiniteFieldArray
    if getattr(cls.__init__, "_once", False):
        return
    unset = None if np.lib.NumpyVersion(np.__version__) >= "2.0.0b1" else False  # numpy 2: "copy if needed"

    def __init__(self, value, check=True, copy=False):
        value = np.array(value, dtype=object, copy=unset if copy is False else copy)
        if check:
            value %= self.field.modulus  # in place, as MPyC: keeps the shape
        self.value = value

    __init__._once = True  # type: ignore[attr-defined]  # marks the patch as applied
    cls.__init__ = __init__


def cache_ssl_contexts() -> None:
    """Build each kind of TLS context once per process. MPyC creates a fresh default context (which
    loads the system's CA store, ~30 ms) for every connection attempt while its peers are not up
    yet, retrying every 0.1 s; it then loads the same certificate, key and CA file into it, so
    handing it the same context again changes nothing but the time. Only for the MPyC process."""
    import functools
    import ssl

    if getattr(ssl.create_default_context, "_cached", False):
        return
    cached = functools.lru_cache(maxsize=4)(ssl.create_default_context)
    cached._cached = True  # type: ignore[attr-defined]  # marks the patch as applied
    ssl.create_default_context = cached  # type: ignore[assignment]  # the same call, cached


def install_fast_recombine() -> None:
    """Replace MPyC's ``thresha.np_recombine`` (Lagrange coefficients as field elements: a product of
    two field-size integers per share) by the same interpolation with the coefficients as small
    integer numerators over one common denominator, reduced once. For a resharing with m = 2t + 1
    (all the points 1..m) the coefficients at 0 are ``(-1)**(i+1) * C(m, i)`` and the denominator 1;
    other point sets (m > 2t + 1, an output's t + 1 shares) have other small numerators and
    denominators, and the sum is multiplied once by the denominator's inverse (``limbs.combine``:
    in machine words for a resharing's ``limbs.Words`` from the installed split)."""
    check_version()
    import numpy as np
    from mpyc import thresha

    if getattr(thresha.np_recombine, "_small", False):
        return

    from mpc_federation import limbs
    from mpc_federation.sharing import lagrange

    def np_recombine(field, points, x_rs=0):
        p = field.modulus
        one = not isinstance(x_rs, list)
        targets = [x_rs] if one else x_rs
        xs, shares = zip(*points)
        if not isinstance(p, int) or field.order != p or not all(type(x) is int for x in (*xs, *targets)):
            return original(field, points, x_rs)
        values = [s.value if isinstance(s, field.array) else s for s in shares]
        rows = []
        for x_r in targets:
            numerators, denominator = lagrange(tuple(xs), x_r)
            total = limbs.combine(numerators, values, p)  # in machine words for a resharing's Words
            if denominator != 1:
                total = total * pow(denominator, -1, p) % p
            rows.append(total)
        return field.array(rows[0] if one else np.stack(rows), check=False)

    original = thresha.np_recombine
    np_recombine._small = True  # type: ignore[attr-defined]  # marks the patch as applied
    thresha.np_recombine = np_recombine


def install_brent_kung_add_bits() -> None:
    """Replace MPyC's ``np_add_bits`` (the binary addition behind ``np_to_bits``, whose carries MPyC
    computes with a Sklansky prefix circuit: 216 secure products for 43 bits, in 6 rounds) by the
    same sum from a Brent-Kung prefix circuit: 110 products for 43 bits, in 9 rounds."""
    check_version()
    from mpyc import runtime

    if getattr(runtime.Runtime.np_add_bits, "_brent_kung", False):
        return

    def np_add_bits(self, a, b):
        if not a.size:
            return a.copy()
        c = brent_kung_carries(self, a, b)
        c_in = self.np_concatenate((c[..., :1] * 0, c[..., :-1]), axis=-1)  # the carry into each bit
        return a + b - c * 2 + c_in

    np_add_bits._brent_kung = True  # type: ignore[attr-defined]  # marks the patch as applied
    runtime.Runtime.np_add_bits = np_add_bits


def brent_kung_carries(mpc, a, b):
    """The carry out of each bit of ``a + b`` (bit vectors along the last axis, low bit first; ``a``
    secure, ``b`` secure or public): a Brent-Kung prefix over (generate, propagate) pairs. Up the tree
    each node i takes in the node ``d`` below it; down the tree the nodes still short of bit 0 take in
    a complete prefix. A prefix that starts at bit 0 needs no propagate product (no carry comes in)."""
    import numpy as np

    n = a.shape[-1]
    g = a * b  # generates (a secure product only when b is secure; np_to_bits passes b public)
    p = a + b - 2 * g  # propagates: a xor b
    d = 1
    while 2 * d <= n:
        hi = np.arange(2 * d - 1, n, 2 * d)
        p_hi = p[..., hi]
        if hi.size > 1:  # the first node's range starts at bit 0: its propagate is never used
            p = mpc.np_update(p, (..., hi[1:]), p_hi[..., 1:] * p[..., hi[1:] - d])
        g = mpc.np_update(g, (..., hi), g[..., hi] + p_hi * g[..., hi - d])
        d *= 2
    while d > 1:
        d //= 2
        i = np.arange(3 * d - 1, n, 2 * d)
        if i.size:
            g = mpc.np_update(g, (..., i), g[..., i] + p[..., i] * g[..., i - d])
    return g


def _bulk_field(runtime, sftype):
    """The field of ``sftype`` if the bulk draws replace MPyC's for it: a prime field, without
    PRSS (how the MPyC process runs); else None (MPyC's own draws)."""
    field = sftype.field if issubclass(sftype, runtime.SecureObject) else sftype
    if not runtime.options.no_prss or field.characteristic == 2 or field.order != field.modulus:
        return None
    return field


def _senders(runtime) -> tuple[int, ...]:
    """The t + 1 parties that input the random values of a draw, as MPyC picks them."""
    m, t = len(runtime.parties), runtime.threshold
    uci = runtime._program_counter[0] % m
    return tuple((uci + i) % m for i in range(t + 1))


def install_bulk_random_bits() -> None:
    """Replace MPyC's ``np_random_bits`` in a prime field without PRSS (how the MPyC process runs),
    which draws each sender's random sign with its own ``secrets.randbits(1)`` call, by the same
    protocol with the signs unpacked from one ``os.urandom`` call: t + 1 parties input random signs,
    their product (t resharings) is a random sign, and ``(sign + 1) / 2`` a random bit (the first
    sender inputs its sign halved, so the bit is the product plus 1/2: no product more). Other
    fields and PRSS go to MPyC's own."""
    check_version()
    import os

    import numpy as np
    from mpyc import asyncoro, runtime

    original = runtime.Runtime.np_random_bits
    if getattr(original, "_bulk", False):
        return

    @asyncoro.mpc_coro
    async def bulk(self, sftype, n, signed):
        secure = issubclass(sftype, self.SecureObject)
        await self.returnType((sftype.array, True, (n,)) if secure else runtime.Future)
        field, f = (sftype.field, sftype.frac_length) if secure else (sftype, 0)
        p, senders = field.modulus, _senders(self)
        # For bits the first sender draws its sign halved, so that the product is sign / 2 and
        # the bit (sign + 1) / 2 one addition away.
        one = 1 if signed or self.pid != senders[0] else (p + 1) >> 1
        if self.pid in senders:  # -one, and +one where the drawn bit is 1
            signs = np.full(n, p - one, dtype=object)
            signs[np.unpackbits(np.frombuffer(os.urandom((n + 7) // 8), dtype=np.uint8))[:n] == 1] = one
        else:
            signs = np.zeros(n, dtype=object)
        inputs = await self.input(field.array(signs, check=False), senders=senders)
        bits = np.stack([a[0] for a in inputs])
        while (rows := bits.shape[0]) > 1:  # the product of the t + 1 signs, halving each round
            odd = rows % 2
            half = await self._reshare(bits[odd : (rows + 1) // 2] * bits[(rows + 1) // 2 :])
            bits = np.concatenate((bits[:1], half), axis=0) if odd else half
        bits = bits[0].value
        if not signed:
            bits = bits + ((p + 1) >> 1)  # sign / 2 + 1 / 2
        return field.array(bits << f if f else bits)

    def np_random_bits(self, sftype, n, signed=False):
        if not n or _bulk_field(self, sftype) is None:
            return original(self, sftype, n, signed)
        return bulk(self, sftype, n, signed)

    np_random_bits._bulk = True  # type: ignore[attr-defined]  # marks the patch as applied
    runtime.Runtime.np_random_bits = np_random_bits


def install_bulk_randoms() -> None:
    """Replace MPyC's ``_np_randoms`` in a prime field without PRSS (the random masks of its
    comparisons, bit decompositions and zero tests), where each of the t + 1 senders draws every
    value with its own ``secrets.randbelow`` call (an ``os.urandom`` call or two each), by the same
    protocol with each sender's values drawn at once (``limbs.random_integers``, as uniform):
    the same senders and bound, the sum of their inputs. Other fields and PRSS go to MPyC's own."""
    check_version()
    import numpy as np
    from mpyc import asyncoro, runtime

    from mpc_federation import limbs

    original = runtime.Runtime._np_randoms
    if getattr(original, "_bulk", False):
        return

    def _np_randoms(self, sftype, n, bound=None):
        secure = issubclass(sftype, self.SecureObject)
        if (field := _bulk_field(self, sftype)) is None:
            return original(self, sftype, n, bound)
        # As MPyC: t + 1 senders, each below a power of 2 that keeps their sum below the bound.
        bound = field.order if bound is None else 1 << max(0, (bound // (self.threshold + 1)).bit_length() - 1)
        senders = _senders(self)
        if self.pid in senders:
            x = field.array(limbs.random_integers(bound, n))
        else:
            x = field.array(np.zeros(n, dtype=object), check=False)
        x = self.input(x, senders=senders)

        @asyncoro.mpc_coro_no_pc
        async def add_shares(x):
            await self.returnType((sftype.array, (n,)) if secure else runtime.Future)
            total = np.sum(np.stack([a[0].value for a in await x]), axis=0)
            return field.array(total)

        return add_shares(x)

    _np_randoms._bulk = True  # type: ignore[attr-defined]  # marks the patch as applied
    runtime.Runtime._np_randoms = _np_randoms


def install_speedups() -> None:
    """Every replacement above of MPyC's arithmetic and randomness by a faster equal, and TLS
    contexts built once: what an MPyC process of the project computes with (its worker, and the
    benchmarks that time the same steps)."""
    install_fast_random_split()
    install_fast_recombine()
    install_brent_kung_add_bits()
    install_bulk_random_bits()
    install_bulk_randoms()
    install_field_array_init()
    cache_ssl_contexts()


def install_hang_up_guard(names: list[str], prefix: str, settle: float = 0.2) -> None:
    """End this MPyC process when a connected peer's connection closes, naming that compute party:
    a peer process that exited or was killed, while this one runs the MPC or still waits for its
    job. MPyC forgets a connection closed cleanly and hands a reset to asyncio's error handler;
    either way the receives pending from that peer wait until the run's deadline, and a process
    waiting for its job would be handed one it cannot run. Connections closed during MPyC's
    shutdown (its own future pending again, after the barrier) or while connecting are MPyC's.

    The process ends ``settle`` seconds after the first close: the other peers that leave because
    of the same hang-up close theirs that much later, so the first one named is the one that hung up.
    Meanwhile nothing is sent on a closed connection (uvloop raises on a closed TCP transport, which
    would stop MPyC's loop before the exit names anyone).

    :param names: the compute parties' names, by party index
    :param prefix: the start of the line the process prints before it exits, for the launcher
    :param settle: seconds between the first close and the exit
    """
    check_version()
    import asyncio
    import os

    from mpyc import asyncoro

    original, original_send = asyncoro.MessageExchanger.connection_lost, asyncoro.MessageExchanger.send
    if getattr(original, "_guard", False):
        return
    closed: list[str] = []

    def leave() -> None:
        try:
            then = f" (then {', '.join(closed[1:])})" if closed[1:] else ""
            print(f"{prefix} {closed[0]} closed its connection{then}", flush=True)
        finally:
            os._exit(1)  # not SystemExit: the interpreter would wait for the thread reading the job's "go"

    def connection_lost(self, exc):
        own = self.runtime.parties[self.runtime.pid].protocol
        if self.peer_pid is not None and own is not None and own.done():  # connected, not shutting down
            if not closed:
                asyncio.get_running_loop().call_later(settle, leave)
            closed.append(names[self.peer_pid] if self.peer_pid < len(names) else f"compute party {self.peer_pid}")
            return None
        return original(self, exc)

    def send(self, pc, payload):
        if not self.transport.is_closing():
            original_send(self, pc, payload)

    connection_lost._guard = True  # type: ignore[attr-defined]  # marks the patch as applied
    asyncoro.MessageExchanger.connection_lost = connection_lost
    asyncoro.MessageExchanger.send = send
