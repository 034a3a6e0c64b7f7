"""The sink's pure parts: counting a message's rows without decoding it, cutting inserts at whole messages, and
when a partial batch is due."""
from types import SimpleNamespace

import orjson

from dealbeacon.core import records
from dealbeacon.core.settings import Settings
from sinks.worker import SinkWorker, batch_due, row_count


def _msg(rows, headers=None):
    return SimpleNamespace(value=orjson.dumps(rows), headers=headers)


def test_rows_are_counted_from_the_header_else_by_decoding():
    rows = [{"a": i} for i in range(7)]
    assert row_count(_msg(rows, records.rows_header(7))) == 7
    assert row_count(_msg(rows, [("other", b"1")])) == 7  # no rows header: decoded
    assert row_count(_msg(rows)) == 7
    assert row_count(SimpleNamespace(value=b'{"a": 1}', headers=None)) == 1  # one object, as decode_many reads it


def test_inserts_are_cut_at_whole_messages_within_the_batch_rows():
    w = SinkWorker(Settings(sink_batch_rows=100), store=None)
    msgs = [(b"a", 50), (b"b", 50), (b"c", 30), (b"d", 150), (b"e", 1)]
    assert w._chunks(msgs) == [([b"a", b"b"], 100), ([b"c"], 30), ([b"d"], 150), ([b"e"], 1)]
    assert w._chunks([]) == []


def test_a_partial_batch_is_due_when_its_rows_have_waited_the_window_here_or_since_they_were_produced():
    assert not batch_due(0.0, 0, 1000)  # fresh rows, just arrived
    assert not batch_due(0.999, 999, 1000)
    assert batch_due(1.0, 5, 1000)  # held here for the window
    assert batch_due(0.0, 1000, 1000)  # a backlog: produced a window ago, just fetched
    assert batch_due(0.0, 86_400_000, 1000)
    assert not batch_due(0.2, -30_000, 1000)  # a producer clock ahead of ours: only the first bound
    assert batch_due(1.2, -30_000, 1000)
    assert not batch_due(0.5, None, 1000)  # no timestamps (an old message format)
