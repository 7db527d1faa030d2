"""Generate a party's keys: ``python -m mpc_federation.keys generate --party ID --out FILE``.

Writes the private keys (mode 600) for the party's Airflow secrets, e.g. as the password of
the ``mpc_party_keys`` connection, and prints the public entry to paste into the spec.
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml

from mpc_federation.envelope import PartyKeys


def write_private(keys: PartyKeys, path: str, *, force: bool = False) -> None:
    """Write ``keys`` to a new file of mode 600; an existing file is kept unless ``force``: a party's
    keys replaced by mistake would make its older signed records unverifiable."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(keys.to_json())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpc_federation.keys")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="new signing and encryption keys for a party")
    gen.add_argument("--party", required=True)
    gen.add_argument("--out", required=True, help="file for the private keys (created with mode 600)")
    gen.add_argument("--force", action="store_true", help="replace the file if it exists")
    gen.add_argument(
        "--compute-index",
        type=int,
        help="for a compute party: its place among the spec's "
        "compute parties (0-based), named in its MPyC TLS certificate",
    )
    pub = sub.add_parser("public", help="print the public entry again (e.g. once the compute order is known)")
    pub.add_argument("--keys", required=True, help="the party's private key file")
    pub.add_argument("--compute-index", type=int)
    pub.add_argument("--allow-test-keys", action="store_true", help="accept keys marked as test keys")
    args = parser.parse_args(argv)
    if args.command == "generate":
        keys = PartyKeys.generate(args.party)
        try:
            write_private(keys, args.out, force=args.force)
        except FileExistsError:
            parser.exit(2, f"{args.out} exists: not replacing a party's keys (--force replaces them)\n")
    else:
        with open(args.keys) as f:
            keys = PartyKeys.from_json(f.read(), allow_test_keys=args.allow_test_keys)
    sys.stdout.write(f"# public entry for party {keys.party}: paste under its item in the federation spec\n")
    sys.stdout.write(yaml.safe_dump({"keys": keys.public_entry(args.compute_index)}, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
