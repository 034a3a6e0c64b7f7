"""The per-partition offset discipline of the stream agents (pure; the Faust wiring is exercised against the
real broker by the kill -9 integration test)."""
from streams.sequencer import Sequencer

TP = ("events", 0)


def test_processes_in_order_from_the_committed_offset_and_skips_redeliveries():
    s = Sequencer()
    s.on_generation(1)
    assert s.decide(TP, 10, committed=10, now=0) == "process"
    s.done(TP, 10, now=0)
    assert s.decide(TP, 10, committed=10, now=0) == "skip"  # delivered again after a seek
    assert s.decide(TP, 11, committed=10, now=0) == "process"
    s.done(TP, 11, now=0)
    assert s.to_commit() == {TP: 12}
    s.committed_ok({TP: 12})
    assert s.to_commit() == {}


def test_a_gap_seeks_back_once_and_drops_what_was_buffered_after_it():
    s = Sequencer(reseek_after_s=2)
    s.on_generation(1)
    # the restarted worker's first message is past the committed offset (faust's pre-seek fetch)
    assert s.decide(TP, 72, committed=69, now=0) == "seek"
    assert s.decide(TP, 73, committed=69, now=0.1) == "skip"  # buffered: comes again after the seek
    assert s.decide(TP, 74, committed=69, now=2.5) == "seek"  # the seek did not land: ask again
    assert s.decide(TP, 69, committed=69, now=2.6) == "process"
    s.done(TP, 69, now=2.6)
    assert s.to_commit() == {TP: 70}  # never past what was processed


def test_a_rebalance_forgets_positions():
    s = Sequencer()
    s.on_generation(1)
    s.decide(TP, 5, committed=5, now=0)
    s.done(TP, 5, now=0)
    s.on_generation(2)  # another worker may have processed 6..19 meanwhile
    assert s.decide(TP, 20, committed=20, now=1) == "process"


def test_a_partition_with_waiting_messages_and_no_progress_is_sought():
    s = Sequencer(stall_after_s=10)
    s.on_generation(1)
    assert s.stalled({TP: 149}, {TP: 45}, now=0) == {}  # first sight: give it time
    assert s.stalled({TP: 149}, {TP: 45}, now=5) == {}
    assert s.stalled({TP: 149}, {TP: 45}, now=10) == {TP: 45}
    assert s.stalled({TP: 149}, {TP: 45}, now=12) == {}  # not again right away
    assert s.decide(TP, 45, committed=45, now=13) == "process"
    s.done(TP, 45, now=13)
    assert s.stalled({TP: 149}, {TP: 45}, now=20) == {}  # progressing
    assert s.stalled({TP: 46}, {TP: 45}, now=60) == {}  # caught up: nothing waiting


def test_a_batch_in_flight_admits_the_next_offsets_but_commits_only_once_done():
    s = Sequencer()
    s.on_generation(1)
    for off in (20, 21, 22):  # taken into one batch
        assert s.decide(TP, off, committed=20, now=0) == "process"
        s.accept(TP, off)
    assert s.decide(TP, 22, committed=20, now=0) == "skip"  # a re-delivery of what the batch holds
    assert s.to_commit() == {}  # outputs not acked yet: nothing committable
    s.done(TP, 22, now=1)
    assert s.to_commit() == {TP: 23}
    s.accept(TP, 23)
    s.on_generation(2)  # a rebalance drops the batch in flight: positions come again from the committed offset
    assert s.to_commit() == {} and s.decide(TP, 23, committed=23, now=2) == "process"
