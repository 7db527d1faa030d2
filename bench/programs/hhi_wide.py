"""Bench only: the HHI program (include/programs/hhi.py) for up to 1,000 firms, for the
1,000-input-party point of bench/targets.py.

A private copy of the real module, loaded from its file, with ``MAX_PARTIES`` raised: its range of
firm counts and its division are sized from that constant when they run.
"""

import dataclasses
from pathlib import Path

from mpc_federation.programs import import_file

_hhi = import_file(Path(__file__).resolve().parents[2] / "include" / "programs" / "hhi.py", "hhi_sized_for_1000")
_hhi.MAX_PARTIES = 1000
_hhi.PARTY_BITS = _hhi.MAX_PARTIES.bit_length() + 2

settings, plaintext = _hhi.settings, _hhi.plaintext
PROGRAM = dataclasses.replace(_hhi.PROGRAM, name="hhi_wide", bit_length=_hhi.division(_hhi.MAX_DECIMALS).secint_bits)
