"""The taxi revenue job's aggregation with pyarrow in Spark's tasks (``--engine arrow``).

Spark hands each core one task with its share of the dataset's Parquet row groups; the task reads
them with pyarrow in its Python worker, one batch at a time and only the two or three columns the
job needs, classes every row by the data policy and sums the cents per month with numpy; the
driver adds the tasks' counts. Spark's SQL engine reads a row several times slower than pyarrow
on one core (docs/benchmarks.md); here Spark only places the work.

The counts, sums and messages are those of include/jobs/taxi_revenue.py's Spark aggregation
(tests/test_trip_policy_spark.py runs its cases on both engines):

* the amount in exact integer cents: an integer times 100; a float through its shortest decimal
  text (Java's and Python's agree), rounded half-up to the cent, with the same floating-point
  shortcut as :func:`taxi_revenue.exact_cents` where it provably gives the same cent; a decimal or
  a string of a number rounded half-up; null when the value is not a number (NaN, infinity, "abc")
  or does not fit decimal(18,2);
* months are UTC months of a timestamp, or the month of a timestamp without time zone or of a date
  as written;
* column names match case-insensitively, file by file: each file is read with its own schema, so
  the files of one dataset may disagree on types. A file without a column that other files have
  reads as nulls there (a null amount is dropped and counted, a null time is outside the period).

Files are local (a path or ``file://``, seen by every executor) or on S3 (``s3://``, ``s3a://``:
pyarrow's S3 client, with the endpoint and credentials of Hadoop's s3a settings, :func:`s3_options`);
other URIs take the Spark engine.
It reads no rows through Spark, so it does not combine with ``--oblivious`` (docs/oblivious.md).
"""

from __future__ import annotations

import functools
import math
import os
import re
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, NamedTuple
from urllib.parse import urlparse

FLAG_NULL, FLAG_NOT_NUMBER, FLAG_NEGATIVE, FLAG_USED = 1, 2, 4, 8  # a row's class: its flags
CLASSES = 16
BATCH_ROWS = 1 << 16  # 512 KB a column of doubles: the passes over a batch stay in the core's cache
MONEY_LIMIT = 10**16  # decimal(18,2) holds amounts below 10**16 in magnitude
CENT = Decimal("0.01")
EXAMPLES = ("outside", "not_number", "negative")  # what the policy's messages may quote
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")  # what Java's BigDecimal parses
_EPOCH = datetime(1970, 1, 1)


class DataError(ValueError):
    """Input the job refuses, with one clear line (taxi_revenue turns it into its InputError)."""


# --- the files ------------------------------------------------------------------------------------


S3_SCHEMES = ("s3", "s3a")  # read with pyarrow's S3 client, configured from the s3a settings
CHECKSUMS = "AWS_RESPONSE_CHECKSUM_VALIDATION"  # the AWS SDK reads it when it makes a client
_S3A_OPTIONS = {  # Hadoop's s3a setting (after fs.s3a.) -> pyarrow's S3FileSystem option
    "access.key": "access_key",
    "secret.key": "secret_key",
    "session.token": "session_token",
    "endpoint.region": "region",
}


class Source(NamedTuple):
    """Where a dataset's files are, as the driver hands it to the tasks (plain values only).

    :param uri: the input as the job was given it (for messages)
    :param root: its path in its file system: an absolute local path, or ``bucket/key``
    :param s3: pyarrow's ``S3FileSystem`` options for an ``s3://`` or ``s3a://`` input, else None
    """

    uri: str
    root: str
    s3: dict | None = None

    def filesystem(self):
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem() if self.s3 is None else _s3_client(tuple(sorted(self.s3.items())))


@functools.lru_cache(maxsize=4)
def _s3_client(options: tuple):
    """One S3 client per process and options: a task reads all its row groups through it. Its
    response checksums are validated as ``fs.s3a.checksum.validation`` says, unless the process's
    environment sets the AWS SDK's variable: the SDK reads it only while it makes the client (pyarrow
    has no option for it), so it is set for that moment alone."""
    import pyarrow.fs as pafs

    kwargs = dict(options)
    validation = kwargs.pop("checksum_validation")
    if CHECKSUMS in os.environ:
        return pafs.S3FileSystem(**kwargs)
    os.environ[CHECKSUMS] = validation
    try:
        return pafs.S3FileSystem(**kwargs)
    finally:
        del os.environ[CHECKSUMS]


def source_of(uri, setting=lambda name: None) -> Source:
    """The input's :class:`Source` (a :class:`Source` stays as it is).

    :param uri: a path, ``file://``, ``s3://`` or ``s3a://`` URI
    :param setting: the Hadoop configuration's value of a setting, or None; the driver passes its
        Spark's, so the s3a settings of ``spark-defaults.conf``, ``--conf spark.hadoop.fs.s3a.*``
        and core-site.xml serve both engines (:func:`s3_options`)
    :raises DataError: any other scheme
    """
    if isinstance(uri, Source):
        return uri
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # a path (or a Windows drive)
        return Source(uri, os.path.abspath(parsed.path if parsed.scheme == "file" else uri))
    if parsed.scheme in S3_SCHEMES and parsed.netloc:
        root = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        return Source(uri, root, s3_options(parsed.netloc, setting))
    raise DataError(
        f"the arrow engine reads local files (a path or file://) and s3:// or s3a://, not {uri}: use the spark engine"
    )


def s3_options(bucket: str, setting) -> dict:
    """pyarrow's S3 client options from Hadoop's s3a settings: ``fs.s3a.endpoint`` (with
    ``fs.s3a.connection.ssl.enabled`` when it names no scheme, and ``path.style.access``: buckets
    addressed by host name unless it is true, as in Hadoop), ``fs.s3a.access.key``, ``secret.key``,
    ``session.token``, ``endpoint.region``, ``checksum.validation`` (false by default, as in Hadoop
    3.4: a ranged read is not checked against a checksum of the whole object, which some
    S3-compatible stores send) and the anonymous credentials provider, each overridden for the
    bucket by ``fs.s3a.bucket.<bucket>.*`` as in Hadoop. Without keys, pyarrow's own chain finds
    the credentials (the AWS_* environment variables, ~/.aws, the instance's role), as Hadoop's does.

    :return: pyarrow's options, and ``checksum_validation`` (the AWS SDK's setting of that name)

    :raises DataError: an access key without its secret key or the reverse
    """

    def get(name: str) -> str | None:
        for key in (f"fs.s3a.bucket.{bucket}.{name}", f"fs.s3a.{name}"):
            value = (setting(key) or "").strip()
            if value:
                return value
        return None

    options: dict = {option: value for name, option in _S3A_OPTIONS.items() if (value := get(name))}
    validate = (get("checksum.validation") or "false").lower() == "true"  # Hadoop's default: false
    options["checksum_validation"] = "when_supported" if validate else "when_required"
    endpoint = get("endpoint")
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        secure = (get("connection.ssl.enabled") or "true").lower() != "false"
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme or ("https" if secure else "http"))
        options["force_virtual_addressing"] = (get("path.style.access") or "false").lower() != "true"
    if ("access_key" in options) != ("secret_key" in options):
        raise DataError(f"fs.s3a.access.key and fs.s3a.secret.key go together (bucket {bucket}): one is not set")
    if "access_key" not in options and "AnonymousAWSCredentialsProvider" in (get("aws.credentials.provider") or ""):
        options["anonymous"] = True  # a public bucket, read without signing
    return options


def list_files(source) -> list[str]:
    """The dataset's files, sorted: the input itself if it is a file, else every file under it whose
    name (and folder) does not start with ``_`` or ``.`` (Spark's rule for hidden files).

    :param source: a :class:`Source`, or an input URI (see :func:`source_of`)
    :raises DataError: an input the engine does not read, a missing path, no file at all, or a
        storage error (its first line)
    """
    import pyarrow.fs as pafs

    source = source_of(source)
    fs = source.filesystem()
    try:
        kind = fs.get_file_info(source.root).type
        if kind == pafs.FileType.File:
            return [source.root]
        if kind != pafs.FileType.Directory:
            bucket = source.root.split("/")[0]
            no_bucket = source.s3 is not None and fs.get_file_info(bucket).type == pafs.FileType.NotFound
            raise DataError(f"input path does not exist: {source.uri}{f' (no bucket {bucket})' if no_bucket else ''}")
        found = fs.get_file_info(pafs.FileSelector(source.root, recursive=True))
    except OSError as e:  # no such bucket, access denied, no answer: the store's own reason
        raise DataError(f"cannot read the input {source.uri}: {_first_line(e)}") from None
    files = sorted(f.path for f in found if f.type == pafs.FileType.File and not _hidden(f.path, source.root))
    if not files:
        raise DataError(f"no Parquet data found in {source.uri}")
    return files


def _hidden(path: str, root: str) -> bool:
    return any(part.startswith(("_", ".")) for part in path[len(root) :].split("/") if part)


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _resolve(names: list[str], wanted: str) -> str | None:
    matches = [n for n in names if n.lower() == wanted.lower()]
    return matches[0] if matches else None


def _columns_of(schema, columns: dict, where: str) -> dict:
    """{role: (name or None, its arrow type)} of one file, its types checked."""
    import pyarrow.types as t

    lowered: dict[str, list[str]] = {}
    for name in schema.names:
        lowered.setdefault(name.lower(), []).append(name)
    for same in lowered.values():
        if len(same) > 1:
            raise DataError(f"two columns differ only by case{where}: {', '.join(same)}")
    found = {}
    for role, wanted in columns.items():
        name = _resolve(schema.names, wanted) if wanted else None
        found[role] = (name, schema.field(name).type if name else None)
    rname, rtype = found["revenue"]
    if rname and not (
        t.is_integer(rtype) or t.is_floating(rtype) or t.is_decimal(rtype) or _is_text(rtype) or t.is_null(rtype)
    ):  # null: a column written with no value at all
        raise DataError(f"revenue column {rname!r}{where} has type {rtype}, expected a number")
    tname, ttype = found["time"]
    if tname and not (t.is_timestamp(ttype) or t.is_date(ttype) or t.is_null(ttype)):
        raise DataError(f"time column {tname!r}{where} has type {ttype}, expected a timestamp")
    return found


def _is_text(kind) -> bool:
    import pyarrow.types as t

    return t.is_string(kind) or t.is_large_string(kind) or t.is_string_view(kind)


# --- amounts --------------------------------------------------------------------------------------


def java_text(value) -> str:
    """A value as Spark casts it to a string (a double as Java prints it), for the messages' examples."""
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        if value == 0 or 1e-3 <= abs(value) < 1e7:  # Python's repr is plain decimal text there too
            return repr(value)
        digits = Decimal(repr(value)).normalize().as_tuple()
        mantissa = "".join(map(str, digits.digits))
        exponent = digits.exponent + len(mantissa) - 1
        return f"{'-' if digits.sign else ''}{mantissa[0]}.{mantissa[1:] or '0'}E{exponent}"
    return str(value)


def cents_of(value) -> int | None:
    """One amount in exact cents as Spark's cast to decimal(18,2) gives it, or None (not a number)."""
    if isinstance(value, int):
        return value * 100 if -MONEY_LIMIT < value < MONEY_LIMIT else None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        value = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not _NUMBER.match(text):
            return None
        value = Decimal(text)
    if abs(value) >= MONEY_LIMIT:
        return None
    try:
        money = value.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return None
    return int(money * 100) if abs(money) < MONEY_LIMIT else None


class Amounts(NamedTuple):
    """An amount column in cents, as numpy arrays of one batch."""

    cents: Any  # int64: exact cents where ``known``; None when ``money`` is exact
    known: Any  # bool: the amount is a number that fits decimal(18,2)
    null: Any  # bool: the amount is null
    money: Any  # float64: the cents where ``known`` (exact, integers, unless ``bound`` is inf)
    bound: float  # no known amount is above this many cents in magnitude (inf: ``money`` is not exact)

    @property
    def any_null(self) -> bool:
        return bool(self.null.any())

    def exact(self):
        """The cents as int64 (exact where ``known``)."""
        if self.cents is not None:
            return self.cents
        import numpy as np

        with np.errstate(invalid="ignore"):  # NaN and infinities where not known: never read
            return self.money.astype(np.int64)


def amount_cents(array) -> Amounts:
    """An amount column in exact cents, with integers and most floats never leaving numpy."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    n = len(array)
    null = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else np.zeros(n, dtype=bool)
    kind = array.type
    if t.is_integer(kind) and not t.is_uint64(kind):
        values = pc.fill_null(array, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        known = ~null & (np.abs(values) < MONEY_LIMIT)
        cents = np.where(known, values * 100, 0)
        return _with_money(cents, known, null)
    if t.is_floating(kind):
        values = array.cast(pa.float64())
        values = (pc.fill_null(values, 0.0) if array.null_count else values).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore", over="ignore"):
            x = values * 100.0
            money = np.rint(x)  # where not known: replaced below, or never read
            # Not within 0.001 of a half cent, below 1e9: the nearest cent is the decimal cast's.
            np.subtract(x, money, out=x)
            known = np.abs(x, out=x) < 0.499
            low, high = (float(values.min()), float(values.max())) if n else (0.0, 0.0)
            if not -1e9 < low <= high < 1e9:  # NaN compares false: out of range too
                known &= np.abs(values) < 1e9
                low, high = -1e9, 1e9
        if array.null_count:
            known &= ~null
        bound = max(-low, high) * 100 + 1
        slow = {}
        for i in np.flatnonzero(~known):  # ties, large values, NaN, infinities: the decimal cast
            if not null[i] and (c := cents_of(float(values[i]))) is not None:
                slow[i] = c
        for i, c in slow.items():
            known[i], money[i] = True, c
            bound = max(bound, abs(c) if abs(c) < 2**53 else math.inf)
        cents = None
        if bound == math.inf:  # a cent beyond float64's integers: exact int64 cents besides
            cents = np.where(known, money, 0).astype(np.int64)
            for i, c in slow.items():
                cents[i] = c
        return Amounts(cents, known, null, money, bound)
    cents = np.zeros(n, dtype=np.int64)  # decimals, strings, uint64: value by value (|cents| < 10**18)
    known = np.zeros(n, dtype=bool)
    for i, value in enumerate(array.to_pylist()):
        c = None if value is None else cents_of(value)
        if c is not None:
            cents[i], known[i] = c, True
    return _with_money(cents, known, null)


def _with_money(cents, known, null) -> Amounts:
    bound = float(max(-int(cents.min()), int(cents.max()))) if len(cents) else 0.0
    return Amounts(cents, known, null, cents.astype("float64"), bound if bound < 2**53 else math.inf)


# --- times ----------------------------------------------------------------------------------------


def _ticks_per_day(kind) -> int:
    import pyarrow.types as t

    if t.is_date32(kind):
        return 1
    if t.is_date64(kind):
        return 86_400_000
    return 86_400 * {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[kind.unit]


def month_bounds(months: list[str], kind):
    """(edges, labels): the declared months' first ticks and their ends, sorted, and the label of
    each span between them (the month's index, or K outside every month), in the ticks of the time
    column's type (days of a date32; units of a timestamp since the epoch, a UTC instant or a
    wall-clock time as written). A tick t is in span ``searchsorted(edges, t, 'right')``."""
    import numpy as np

    per_day = _ticks_per_day(kind)

    def tick(year: int, month: int) -> int:
        return (date(year, month, 1) - _EPOCH.date()).days * per_day

    spans = {}
    for i, m in enumerate(months):
        year, month = int(m[:4]), int(m[5:])
        spans[tick(year, month)] = (tick(year + month // 12, month % 12 + 1), i)
    edges = sorted({t for start, (end, _) in spans.items() for t in (start, end)})
    labels = [len(months)] + [spans[e][1] if e in spans else len(months) for e in edges]
    # A span starts at an edge: a month if a month starts there, else outside (a month's end).
    return np.array(edges, dtype=np.int64), np.array(labels, dtype=np.intp)


def month_index(array, bounds):
    """Each row's declared month (0..K-1), or K for a time outside every month or null."""
    import numpy as np
    import pyarrow.compute as pc

    edges, labels = bounds
    ticks = _ticks(array)
    ticks = (pc.fill_null(ticks, 0) if array.null_count else ticks).to_numpy(zero_copy_only=False)
    month = labels[np.searchsorted(edges, ticks, side="right")]
    if array.null_count:
        month[array.is_null().to_numpy(zero_copy_only=False)] = labels[0]
    return month


def _ticks(array):
    """A time column as int64 ticks (date32 casts to integers through int32 only)."""
    import pyarrow as pa

    return (array.cast(pa.int32()) if pa.types.is_date32(array.type) else array).cast(pa.int64())


def time_text(tick: int, kind) -> str:
    """A time as Spark casts it to a string in UTC: ``2024-01-31 23:59:59[.5]`` or ``2024-01-31``."""
    import pyarrow as pa

    per_day = _ticks_per_day(kind)
    if pa.types.is_date(kind):
        return (_EPOCH + timedelta(days=tick // per_day)).date().isoformat()
    per_second = per_day // 86_400
    seconds, fraction = divmod(tick, per_second)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")
    if fraction:
        text += "." + f"{fraction:0{len(str(per_second)) - 1}d}".rstrip("0")
    return text


# --- the driver: the files' schemas ---------------------------------------------------------------


def plan(source, columns: dict) -> tuple[list[tuple[str, int]], int]:
    """The dataset's row groups, (file, index) in order, and the number of distinct schemas among
    its files, every schema checked. A row group is the unit of work, so that one large file is
    read by every core.

    :param source: the input (see :func:`list_files`)
    :param columns: {'revenue': name, 'time': name, 'participant': name or None}
    :raises DataError: an unreadable file, names that differ only by case, a column of the wrong
        type, or a column no file has
    """
    import pyarrow.parquet as pq

    source = source_of(source)
    schemas, names, found = set(), {}, dict.fromkeys(columns, False)
    units = []
    for path in list_files(source):
        name = os.path.basename(path)
        try:
            metadata = pq.read_metadata(path, filesystem=source.filesystem())
            schema = metadata.schema.to_arrow_schema()
        except Exception as e:  # noqa: BLE001 - not Parquet, truncated, unreadable: name the file
            raise DataError(f"cannot read the input {source.uri}: {name}: {_first_line(e)}") from None
        units += [(path, group) for group in range(metadata.num_row_groups)] or [(path, -1)]  # -1: no row group
        schemas.add(schema.to_string(show_schema_metadata=False))
        names.update(dict.fromkeys(schema.names))
        for role, (column, _) in _columns_of(schema, columns, f" in {name}").items():
            found[role] = found[role] or column is not None
    for role, wanted in columns.items():
        if wanted and not found[role]:
            raise DataError(f"{role} column {wanted!r} is missing; columns are: {', '.join(names)}")
    return units, len(schemas)


# --- a task: its files' counts --------------------------------------------------------------------


def file_counts(
    path: str,
    months: list[str],
    columns: dict,
    participant: str | None,
    drop_negatives: bool,
    quoted=EXAMPLES,
    row_groups: list[int] | None = None,
    source: Source | None = None,
) -> dict:
    """One file's counts (or its ``row_groups``' only): rows per (key, class), cents per month, and
    the examples in ``quoted`` (those the policy's messages may quote; looking for them costs a pass
    or more per batch).

    :param source: the dataset the file is in (None: a local file); S3 reads the row groups' columns
        with coalesced requests (pyarrow's ``pre_buffer``)

    Keys: the declared months (0..K-1), K for this party's rows outside them, K+1 for other
    licensees' rows; a row's class: its flags (null amount, not a number, negative, used) when it is
    this party's and in the period, else 0.

    :return: {'counts': [(K+2)*16 ints], 'sums': [K ints of cents], 'outside': text or None,
        'not_number': text or None, 'negative': cents or None}
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    k = len(months)
    remote = source is not None and source.s3 is not None
    parquet = pq.ParquetFile(path, filesystem=source.filesystem() if source else None, pre_buffer=remote)
    found = _columns_of(parquet.schema_arrow, columns, f" in {os.path.basename(path)}")
    (rev, _), (when, ttype), (who, _) = found["revenue"], found["time"], found.get("participant", (None, None))
    if when and pa.types.is_null(ttype):
        when = None  # no time at all: every row outside the period
    bounds = month_bounds(months, ttype) if when else None
    counts = np.zeros((k + 2) * CLASSES, dtype=np.int64)
    sums = [0] * k
    examples: dict = dict.fromkeys(EXAMPLES)
    wanted = [c for c in (rev, when, who) if c]
    groups = None if row_groups is None else [g for g in row_groups if g >= 0]
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=groups, columns=wanted, use_threads=False):
        n = batch.num_rows
        amounts = amount_cents(batch.column(rev) if rev else pa.nulls(n))  # no such column here: nulls
        known, null = amounts.known, amounts.null
        key = month_index(batch.column(when), bounds) if when else np.full(n, k, dtype=np.intp)
        if columns.get("participant"):  # other licensees' rows: key K+1
            mine = pc.fill_null(pc.equal(batch.column(who).cast("string"), participant), False) if who else None
            mine = np.zeros(n, dtype=bool) if mine is None else mine.to_numpy(zero_copy_only=False)
            key[~mine] = k + 1
        negative = known & (amounts.money < 0)
        used = known & ~negative if drop_negatives else known
        flags = used.view(np.uint8) << 3  # the classes of rows outside the period are never read
        flags |= negative.view(np.uint8) << 2
        if amounts.any_null:
            flags |= (~known & ~null).view(np.uint8) << 1
            flags |= null.view(np.uint8)
        else:
            flags |= (~known).view(np.uint8) << 1
        found_here = np.bincount(key * CLASSES + flags, minlength=len(counts))
        counts += found_here
        for i, cents_i in enumerate(_sums(key, amounts, used, k)):
            sums[i] += cents_i
        if quoted:
            _examples(examples, quoted, batch, found, found_here.reshape(k + 2, CLASSES), key, amounts)
    return {"counts": counts.tolist(), "sums": sums, **examples}


def _sums(key, amounts: Amounts, used, k: int) -> list[int]:
    """The exact sum of the used amounts of each key below ``k``: in float64 at once when no partial
    sum can reach 2**53, else in two halves of 32 bits that cannot (at most 2**20 rows a batch)."""
    import numpy as np

    n = len(key)
    if amounts.bound * n < 2**53:
        money = amounts.money if used.all() else np.where(used, amounts.money, 0.0)
        return [int(x) for x in np.bincount(key, weights=money, minlength=k + 2)[:k]]
    if n > 2**20:  # pragma: no cover - batches hold at most BATCH_ROWS rows
        raise ValueError("too many rows for exact sums")
    value = np.where(used, amounts.exact(), 0)
    high = np.bincount(key, weights=value >> 32, minlength=k + 2)
    low = np.bincount(key, weights=value & 0xFFFFFFFF, minlength=k + 2)
    return [int(high[i]) * 2**32 + int(low[i]) for i in range(k)]


def _examples(examples: dict, quoted, batch, found: dict, classes, key, amounts: Amounts) -> None:
    """The smallest example of each kind the messages quote, as Spark's aggregation takes it (the
    smallest text, or amount), looked for only where the batch's counts say there is one.

    :param quoted: the kinds to look for
    :param classes: the batch's rows per key and class
    """
    import numpy as np

    def least(kind: str, candidate) -> None:
        examples[kind] = _least(examples[kind], candidate)

    (rev, _), (when, ttype) = found["revenue"], found["time"]
    k = len(classes) - 2
    flagged = [sum(classes[:k, c].sum() for c in range(CLASSES) if c & bit) for bit in (FLAG_NOT_NUMBER, FLAG_NEGATIVE)]
    if "outside" in quoted and classes[k].sum():
        outside = key == k
        ticks = [t for t in _ticks(batch.column(when).filter(outside)).to_pylist() if t is not None] if when else []
        least("outside", time_text(min(ticks), ttype) if ticks else "null")
    if "not_number" in quoted and flagged[0]:
        values = batch.column(rev).filter((key < k) & ~amounts.known & ~amounts.null)  # a value, not a number
        least("not_number", min(java_text(v) for v in values.to_pylist()))
    if "negative" in quoted and flagged[1]:
        cents = amounts.exact()
        least("negative", int(np.min(cents[(key < k) & amounts.known & (cents < 0)])))


def task_counts(
    files,
    months: list[str],
    columns: dict,
    participant: str | None,
    drop_negatives: bool,
    quoted=EXAMPLES,
    source: Source | None = None,
) -> list:
    """One Spark task: the counts of its row groups added up (``files``: (file, row group) pairs, as
    :func:`plan` gives them, in ``source``), or the first file's error as text."""
    by_file: dict[str, list[int]] = {}
    for path, group in files:
        by_file.setdefault(path, []).append(group)
    total: dict | None = None
    for path, groups in by_file.items():
        try:
            part = file_counts(path, months, columns, participant, drop_negatives, quoted, groups, source)
        except DataError as e:
            return [{"error": str(e)}]
        except Exception as e:  # noqa: BLE001 - a file that changed or broke since the driver read it
            return [{"error": f"cannot read {os.path.basename(path)}: {_first_line(e)}"}]
        total = part if total is None else merge(total, part)
    return [] if total is None else [total]


def merge(a: dict, b: dict) -> dict:
    """Two counts added up (the examples: the least of each)."""
    return {
        "counts": [x + y for x, y in zip(a["counts"], b["counts"])],
        "sums": [x + y for x, y in zip(a["sums"], b["sums"])],
        **{kind: _least(a[kind], b[kind]) for kind in EXAMPLES},
    }


def _least(x, y):
    """The smaller of two examples, either of which may be None (none found)."""
    return y if x is None else x if y is None else min(x, y)


# --- the driver: the tasks and their counts -------------------------------------------------------


def count_and_sum(
    spark, uri: str, months: list[str], columns: dict, participant: str | None, drop_negatives: bool, quoted=EXAMPLES
):
    """What taxi_revenue.count_and_sum computes, one task per core (this module must be importable
    on the executors: mpc_job.ship_module).

    :param quoted: the examples to find (of :data:`EXAMPLES`); the others are None
    :return: (the row of counts, sums ``m0``.. as Decimals and examples; the number of schemas)
    :raises DataError: see :func:`plan`, and a task's error
    """
    source = source_of(uri, spark.sparkContext._jsc.hadoopConfiguration().get)
    units, schemas = plan(source, columns)
    slices = max(1, min(len(units), spark.sparkContext.defaultParallelism))
    parts = (
        spark.sparkContext.parallelize(units, slices)
        .mapPartitions(lambda it: task_counts(list(it), months, columns, participant, drop_negatives, quoted, source))
        .collect()
    )
    for part in parts:
        if "error" in part:
            raise DataError(part["error"])
    total = parts[0]
    for part in parts[1:]:
        total = merge(total, part)
    return row_of(total, len(months)), schemas


def row_of(total: dict, k: int) -> dict:
    """The counts as taxi_revenue.count_and_sum's row."""
    counts = [total["counts"][key * CLASSES : (key + 1) * CLASSES] for key in range(k + 2)]

    def flagged(bit: int, keys=range(k)) -> int:
        return sum(counts[key][c] for key in keys for c in range(CLASSES) if c & bit)

    rows_read = sum(map(sum, counts))
    row = {
        "rows_read": rows_read,
        "rows_mine": rows_read - sum(counts[k + 1]),
        "rows_in_period": sum(sum(counts[key]) for key in range(k)),
        "rows_outside_period": sum(counts[k]),
        "null_amounts": flagged(FLAG_NULL),
        "not_numbers": flagged(FLAG_NOT_NUMBER),
        "negatives": flagged(FLAG_NEGATIVE),
        "rows_used": flagged(FLAG_USED),
        "outside_example": total["outside"],
        "not_number_example": total["not_number"],
        "negative_example": None if total["negative"] is None else Decimal(total["negative"]).scaleb(-2),
    }
    for i in range(k):
        row[f"m{i}"] = Decimal(total["sums"][i]).scaleb(-2)
        row[f"n{i}"] = flagged(FLAG_USED, [i])
    return row
