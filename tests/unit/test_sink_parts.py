"""The sink's pure parts: counting a message's rows without decoding it, and cutting inserts at whole messages."""
from types import SimpleNamespace

import orjson

from dealbeacon.core import records
from dealbeacon.core.settings import Settings
from sinks.worker import SinkWorker, row_count


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
