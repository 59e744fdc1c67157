"""Minimal TAP producer for the test scripts (run by prove)."""
import atexit
import re
import sys

_count = 0
_failed = 0
_planned = None


def plan(n):
    global _planned
    _planned = n
    print("1..%d" % n, flush=True)


def skip_all(reason):
    print("1..0 # SKIP %s" % reason, flush=True)
    sys.exit(0)


def diag(msg, stream=None):
    for line in str(msg).splitlines() or [""]:
        print("# " + line, file=stream or sys.stdout, flush=True)


def ok(cond, name, detail=None):
    global _count, _failed
    _count += 1
    if cond:
        print("ok %d - %s" % (_count, name), flush=True)
    else:
        _failed += 1
        print("not ok %d - %s" % (_count, name), flush=True)
        # as Test::More does: on stderr, which prove shows without -v, so a
        # failure in make check or CI says what was measured
        diag("Failed test %d - %s" % (_count, name), sys.stderr)
        if detail is not None:
            diag(detail, sys.stderr)
    return bool(cond)


def is_(got, expected, name):
    return ok(got == expected, name, "got:      %r\nexpected: %r" % (got, expected))


def like(got, pattern, name):
    return ok(got is not None and re.search(pattern, got, re.M) is not None, name,
              "got:      %r\npattern:  %r" % (got, pattern))


def unlike(got, pattern, name):
    return ok(got is None or re.search(pattern, got, re.M) is None, name,
              "got:      %r\nunwanted: %r" % (got, pattern))


def skip(name, reason):
    """A passing test marked # SKIP: name cannot be checked here, for reason."""
    ok(True, "%s # SKIP %s" % (name, reason))


def scenario(name, fn, *args):
    """Runs fn(*args), one group of checks; an exception in it is one
    failing test (with the traceback), not the end of the file."""
    try:
        fn(*args)
    except Exception:  # noqa: BLE001
        import traceback
        ok(False, "%s: ran to completion" % name, traceback.format_exc())


def _finish():
    if _planned is None:
        print("1..%d" % _count, flush=True)
    if _failed:
        sys.stdout.flush()
        import os
        os._exit(1)


atexit.register(_finish)
