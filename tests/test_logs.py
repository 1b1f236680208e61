"""How a parent reads the level of each stderr line a syftflwr process writes."""

from __future__ import annotations

import logging
import sys

from syftflwr.logs import LineLevels, PlainFormatter

LINES = [
    ("alice@lab.org (datasite) over fsspec-local (selected by auto-detect)", logging.INFO),
    ("WARNING syftflwr.mailbox: rejected request 1 (x): too large", logging.WARNING),
    (
        "ERROR syftflwr.flower: datasite ds2@lab.org: ClientApp raised on train message 9",
        logging.ERROR,
    ),
    ("    Traceback (most recent call last):", logging.ERROR),  # the record's own traceback
    ('      File "client_app.py", line 11, in train', logging.ERROR),
    ("    RuntimeError: disk full", logging.ERROR),
    ("INFO flwr: [ROUND 2/3]", logging.INFO),
    ("Traceback (most recent call last):", logging.ERROR),  # an uncaught exception
    ('  File "x.py", line 1, in <module>', logging.ERROR),
    ("ValueError: boom", logging.ERROR),  # its last line ends it
    ("", logging.ERROR),
    ("During handling of the above exception, another exception occurred:", logging.ERROR),
    ("KeyError: 'x'", logging.ERROR),
    ("datasite ds2@lab.org stopped (signal): 1 messages handled", logging.INFO),
    ("error: the 'gdrive' transport is not installed", logging.ERROR),
    ("  fix: pip install ...", logging.ERROR),
    ("warning: transport 'x' failed to import", logging.WARNING),
    ("a library's own print", logging.INFO),
]


def test_each_line_gets_the_level_of_its_record() -> None:
    levels = LineLevels()
    assert [(line, levels.level(line)) for line, _ in LINES] == LINES


def test_plain_records_indent_their_further_lines() -> None:
    try:
        raise RuntimeError("disk full")
    except RuntimeError:
        record = logging.LogRecord("syftflwr.flower", 40, __file__, 1, "it failed", (), None)
        record.exc_info = sys.exc_info()
    first, *rest = PlainFormatter().format(record).split("\n")
    assert first == "ERROR syftflwr.flower: it failed"
    assert rest and all(line.startswith("    ") for line in rest)
    assert rest[-1] == "    RuntimeError: disk full"
    levels = LineLevels()
    assert {levels.level(line) for line in [first, *rest]} == {logging.ERROR}
