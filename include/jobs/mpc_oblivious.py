"""Oblivious aggregation for the local stage: a party's Spark shuffle that does not depend on its data.

Used by the built-in jobs (taxi_revenue, payroll_sums) when they run with ``--oblivious``, and by
any aggregation job written for the program library (its aggregate is a vector of counts and sums
indexed by the spec's public labels: months, job levels, ...). The construction is the Melbourne
shuffle as it was carried onto MapReduce (Ohrimenko et al.):

* **keyed pseudorandom partitioner**: key ``k`` goes to reducer ``HMAC-SHA256(s, k) mod R``, with
  ``s`` a fresh secret of the run (``secrets.token_bytes``), kept in the driver's memory only:
  never logged, never written. Whoever sees the shuffle does not learn which key a reducer holds.
* **per-map-task padding**: every map task writes *the same number of records to every reducer*,
  filling up with dummy records flagged ``is_dummy = 1``; the number is a public constant (see
  below), so a map task's shuffle volumes are the same whatever its data.
* **reducers drop dummies** and sum.

Combiners. A map-side combine (Spark's partial aggregation, ``reduceByKey``) writes one record
per key *present* in a map task, so its volume depends on the data too. Here the combine is part
of the construction instead of being switched off: each map task sums its rows per key of the
public key domain (every key, present or not), routes the K combined records by the keyed
partitioner and pads every reducer's share to K records. So a map task always writes R x K
records, whatever its size and key distribution (padding raw rows instead would need R x n
records per map task of n rows, since all n rows may carry one key). Keys whose domain is not
public or not small (employee ids for a duplicate check) go through :func:`oblivious_distinct_count`,
which pads raw records: every reducer gets exactly n records from a map task of n rows.

Records have a fixed width (integers, a decimal(38,0) sum, a 32-byte digest), Spark compresses
no shuffle block (``spark.shuffle.compress=false``: compressed sizes would depend on the values),
and :data:`SPARK_CONF` encrypts shuffle files and spills (``spark.io.encryption.enabled``) and
RPC (``spark.network.crypto.enabled`` with ``spark.authenticate``): Spark's own AES, no
hand-made cryptography. So every (map task, reducer) block has the same size in bytes as well.

What it does not hide: the number of map tasks and their input sizes (the input splits), timing,
and anything to someone who reads the executors' memory.

Runs inside a job that spark-submit starts: the job ships this file to the executors itself
(mpc_job.ship_module), so ``spark-submit include/jobs/taxi_revenue.py --oblivious ...`` works alone;
a deployment may pass it with ``--py-files`` as well (the Airflow aggregate task does).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from decimal import Decimal

REDUCERS = 4
# Spark settings of an oblivious run. spark.authenticate needs spark.authenticate.secret on a
# cluster (local masters make their own); the Airflow task passes it from the party's secrets.
SPARK_CONF = {
    "spark.io.encryption.enabled": "true",  # shuffle files, spills, broadcast blocks: AES-CTR
    "spark.network.crypto.enabled": "true",  # RPC and block transfers: AES-GCM, keys from the secret
    "spark.authenticate": "true",
    "spark.shuffle.compress": "false",  # compressed block sizes would depend on the values
    "spark.sql.adaptive.enabled": "false",  # exactly R reduce partitions, no plan chosen by sizes
}
_LABEL = b"mpc-oblivious-partition/1:"


def new_secret() -> bytes:
    """A fresh partitioner key for one run (32 bytes from the OS's CSPRNG)."""
    return secrets.token_bytes(32)


def prf_partition(secret: bytes, key, reducers: int) -> int:
    """The reducer of ``key``: HMAC-SHA256(secret, key) mod ``reducers`` (key as its text)."""
    mac = hmac.new(secret, _LABEL + str(key).encode(), hashlib.sha256).digest()
    return int.from_bytes(mac, "big") % reducers


def hash_labels(spark, reducers: int) -> list[int]:
    """``labels[r]``: an integer that Spark's hash partitioning over ``reducers`` partitions (what
    ``DataFrame.repartition(n, col)`` uses: pmod(murmur3(col), n)) sends to partition ``r``.

    Computed by Spark itself on public numbers, so it follows Spark's hash on every version.
    """
    rows = (
        spark.range(0, 64 * reducers)
        .selectExpr("cast(id as int) as x", f"pmod(hash(cast(id as int)), {int(reducers)}) as p")
        .collect()
    )
    found: dict[int, int] = {}
    for row in rows:
        found.setdefault(row.p, row.x)
    if len(found) < reducers:
        raise RuntimeError(f"no label for some of {reducers} partitions")
    return [found[r] for r in range(reducers)]


def _exact_bincount(keys, values, length: int) -> list[int]:
    """Per-key sums of integer ``values``, exactly (floats only where every partial sum is below 2**53)."""
    import numpy as np

    if len(values) == 0:
        return [0] * length
    bound = int(np.abs(values).max()) * len(values)
    if bound < 2**53:
        return [int(x) for x in np.rint(np.bincount(keys, weights=values.astype(np.float64), minlength=length))]
    out = [0] * length
    for k, v in zip(keys.tolist(), values.tolist()):
        out[k] += v
    return out


def map_schema(classes: int) -> str:
    counts = ", ".join(f"c{j} long" for j in range(classes))
    return f"label int, key int, is_dummy int, {counts}, total decimal(38,0)"


def reduce_schema(classes: int) -> str:
    counts = ", ".join(f"c{j} long" for j in range(classes))
    return f"key int, {counts}, total decimal(38,0)"


def combine_and_pad(owner: list[int], labels: list[int], classes: int):
    """The map side of :func:`oblivious_sums` for one map task (a function for ``mapInArrow``).

    :param owner: ``owner[k]`` is the reducer of key ``k`` (from the keyed partitioner)
    :param labels: see :func:`hash_labels`
    :param classes: number of row classes counted per key
    """
    num_keys, reducers = len(owner), len(labels)

    def per_task(batches):
        import numpy as np
        import pyarrow as pa

        counts = [0] * (num_keys * classes)
        totals = [0] * num_keys
        for batch in batches:
            if batch.num_rows == 0:
                continue
            key = batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64)
            cls = batch.column(1).to_numpy(zero_copy_only=False).astype(np.int64)
            value = batch.column(2).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            cells = np.bincount(key * classes + cls, minlength=num_keys * classes)
            counts = [a + int(b) for a, b in zip(counts, cells)]
            totals = [a + b for a, b in zip(totals, _exact_bincount(key, value, num_keys))]
        # Every key of the domain, present or not, as one record to its reducer; then every
        # reducer's share filled up to num_keys records with dummies.
        rows = []
        for r in range(reducers):
            mine = [k for k in range(num_keys) if owner[k] == r]
            for k in mine:
                rows.append((labels[r], k, 0, counts[k * classes : (k + 1) * classes], totals[k]))
            for _ in range(num_keys - len(mine)):
                rows.append((labels[r], 0, 1, [0] * classes, 0))
        columns = [
            pa.array([row[0] for row in rows], pa.int32()),
            pa.array([row[1] for row in rows], pa.int32()),
            pa.array([row[2] for row in rows], pa.int32()),
        ]
        columns += [pa.array([row[3][j] for row in rows], pa.int64()) for j in range(classes)]
        columns.append(pa.array([Decimal(row[4]) for row in rows], pa.decimal128(38, 0)))
        names = ["label", "key", "is_dummy", *(f"c{j}" for j in range(classes)), "total"]
        yield pa.RecordBatch.from_arrays(columns, names=names)

    return per_task


def drop_dummies_and_sum(classes: int, num_keys: int):
    """The reduce side of :func:`oblivious_sums` for one reduce partition (for ``mapInArrow``).

    Emits one row for every key of the domain (zeros for keys this reducer does not own), so every
    reducer's result has the same size too.
    """

    def per_partition(batches):
        import pyarrow as pa

        sums: dict[int, list[int]] = {k: [0] * (classes + 1) for k in range(num_keys)}
        for batch in batches:
            data = batch.to_pydict()
            for i, dummy in enumerate(data["is_dummy"]):
                if dummy:
                    continue
                acc = sums[data["key"][i]]
                for j in range(classes):
                    acc[j] += data[f"c{j}"][i]
                acc[classes] += int(data["total"][i])
        keys = sorted(sums)
        columns = [pa.array(keys, pa.int32())]
        columns += [pa.array([sums[k][j] for k in keys], pa.int64()) for j in range(classes)]
        columns.append(pa.array([Decimal(sums[k][classes]) for k in keys], pa.decimal128(38, 0)))
        yield pa.RecordBatch.from_arrays(columns, names=["key", *(f"c{j}" for j in range(classes)), "total"])

    return per_partition


def padded_shuffle(spark, rows, num_keys: int, classes: int = 1, reducers: int = REDUCERS, secret: bytes | None = None):
    """The padded, keyed shuffle of :func:`oblivious_sums`, before the reduce side.

    :param rows: DataFrame of (key int in [0, num_keys), cls int in [0, classes), value long or null)
    :return: DataFrame of the shuffle's map output (label, key, is_dummy, c0.., total),
        repartitioned to ``reducers`` partitions by the keyed partitioner
    """
    secret = new_secret() if secret is None else secret
    owner = [prf_partition(secret, k, reducers) for k in range(num_keys)]
    del secret  # only the key -> reducer table goes to the executors
    labels = hash_labels(spark, reducers)
    mapped = rows.mapInArrow(combine_and_pad(owner, labels, classes), map_schema(classes))
    return mapped.repartition(reducers, "label")


def oblivious_sums(
    spark, rows, num_keys: int, classes: int = 1, reducers: int = REDUCERS
) -> list[tuple[list[int], int]]:
    """Count rows per (key, class) and sum ``value`` per key through an oblivious shuffle.

    :param spark: the session (see :data:`SPARK_CONF` for its settings)
    :param rows: DataFrame of exactly three columns: key (int in [0, num_keys), not null), cls
        (int in [0, classes)) and value (integer; null counts as 0). The key domain is public
        (the spec's labels plus whatever fixed keys the job adds), so its size may be known.
    :param num_keys: size of the key domain
    :param classes: number of row classes counted per key (e.g. bit flags of the data policy)
    :param reducers: number of reduce partitions
    :return: per key, (row count per class, exact sum of the values) as Python ints
    """
    shuffled = padded_shuffle(spark, rows.toDF("key", "cls", "value"), num_keys, classes, reducers)
    out = [([0] * classes, 0) for _ in range(num_keys)]
    for row in shuffled.mapInArrow(drop_dummies_and_sum(classes, num_keys), reduce_schema(classes)).collect():
        counts, total = out[row["key"]]
        out[row["key"]] = ([a + row[f"c{j}"] for j, a in enumerate(counts)], total + int(row["total"]))
    return out


def distinct_pad(secret: bytes, reducers: int, labels: list[int]):
    """The map side of :func:`oblivious_distinct_count` for one map task (for ``mapInArrow``)."""

    def per_task(batches):
        import pyarrow as pa

        n, digests = 0, set()
        for batch in batches:
            n += batch.num_rows
            for value in batch.column(0).to_pylist():
                if value is not None:
                    digests.add(hmac.new(secret, _LABEL + str(value).encode(), hashlib.sha256).digest())
        shares: list[list[bytes]] = [[] for _ in range(reducers)]
        for d in digests:
            shares[int.from_bytes(d, "big") % reducers].append(d)
        label, dummy, digest = [], [], []
        for r, share in enumerate(shares):
            label += [labels[r]] * n
            dummy += [0] * len(share) + [1] * (n - len(share))
            digest += share + [bytes(32)] * (n - len(share))
        yield pa.RecordBatch.from_arrays(
            [pa.array(label, pa.int32()), pa.array(dummy, pa.int32()), pa.array(digest, pa.binary())],
            names=["label", "is_dummy", "digest"],
        )

    return per_task


def _count_distinct_real(batches):
    import pyarrow as pa

    seen = set()
    for batch in batches:
        data = batch.to_pydict()
        seen.update(d for d, dummy in zip(data["digest"], data["is_dummy"]) if not dummy)
    yield pa.RecordBatch.from_arrays([pa.array([len(seen)], pa.int64())], names=["n"])


def oblivious_distinct_count(spark, column, reducers: int = REDUCERS) -> int:
    """The number of distinct non-null values of a one-column DataFrame, through an oblivious shuffle.

    Every value becomes its keyed digest HMAC-SHA256(s, value) (fixed width; ``s`` a fresh
    secret of this call, sent to the executors inside the task), routed to reducer digest mod R;
    every map task of n rows writes exactly n records to every reducer (distinct digests first,
    then dummies), so R x n records whatever the values. Equal values meet at one reducer.
    """
    secret = new_secret()
    labels = hash_labels(spark, reducers)
    mapped = column.mapInArrow(distinct_pad(secret, reducers, labels), "label int, is_dummy int, digest binary")
    del secret
    counted = mapped.repartition(reducers, "label").mapInArrow(_count_distinct_real, "n long")
    return sum(row["n"] for row in counted.collect())
