"""Fault injection: shift this Python process's wall clock by FAKE_CLOCK_OFFSET seconds."""

import os
import time

_offset = float(os.environ.get("FAKE_CLOCK_OFFSET", "0"))
if _offset:
    _real_time = time.time
    time.time = lambda: _real_time() + _offset
