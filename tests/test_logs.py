"""Log lines: one access line a request, readable at a terminal; the development server's own line dropped."""

import logging

from streampay.logs import ConsoleFormatter


def test_one_access_line_a_request_reads_plainly_at_a_terminal(client, caplog):
    caplog.set_level("INFO", logger="streampay.access")
    client.get("/healthz")
    [record] = [r for r in caplog.records if r.name == "streampay.access"]
    line = ConsoleFormatter().format(record)
    assert line.endswith(f" INFO    200 GET /healthz {record.duration_ms} ms")


def test_the_development_servers_request_line_is_dropped_and_its_banner_kept(client):
    werkzeug = logging.getLogger("werkzeug")

    def kept(message: str) -> bool:
        return werkzeug.filter(logging.LogRecord("werkzeug", logging.INFO, __file__, 1, message, None, None))

    assert not kept('127.0.0.1 - - [03/Dec/2026 08:11:45] "GET /healthz HTTP/1.1" 200 -')
    assert kept(" * Running on http://127.0.0.1:3000")
