"""Bodies decoded straight into `MarketEvent`s fold into the feature engine exactly as their records do.

The features agent's hot path (core/src/market.rs) against the record path it replaces (the serde's record,
then `FeatureEngine.update`): the same vectors bit for bit, the same counts, the same exceptions and the same
state bytes, on every record of the real captures and on SYNTHETIC hypothesis sequences of late, duplicated
and out-of-order records; a body that is not exactly one of a current market schema is left to the serde,
which decodes it or refuses it (a dead letter), so nothing is lost.
"""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decision.features import FeatureEngine, MarketRecord
from streams.avro import SerdeError
from streams.serde import SingleObjectSerde, market_decoder
from tests.decision.test_compiled_features import _step, every_real_record, sequences

SERDE = SingleObjectSerde()
TOPICS = {schema: schema for schema in
          ("liqbot.Liquidation", "liqbot.Trade", "liqbot.TopOfBook", "liqbot.BookUpdate", "liqbot.Ticker")}
DECODER = market_decoder(SERDE, TOPICS)


def payload(record: MarketRecord) -> bytes:
    return SERDE.encode(record.SCHEMA, record)


def fold_both(records: list[MarketRecord], payloads: list[bytes]) -> tuple[FeatureEngine, FeatureEngine]:
    """Each payload through both paths; every step the same (vector, values after it, or what raised)."""
    by_record, by_event = FeatureEngine(), FeatureEngine()
    for i, (record, body) in enumerate(zip(records, payloads, strict=True)):
        event = DECODER.decode(body)
        assert event is not None, i
        decoded = SERDE.decode(record.SCHEMA, body)
        assert (event.SCHEMA, event.venue, event.symbol, event.event_id, event.ts_event_ns, event.ts_recv_ns) == \
               (decoded.SCHEMA, record.venue, record.symbol, record.event_id, record.ts_event_ns, record.ts_recv_ns)
        expected = _step(by_record, decoded)  # type: ignore[arg-type]
        got = _step_event(by_event, event, record)
        assert got == expected, (i, record)
        if got[0] == "raised":
            break  # a half-applied record: the state beyond it is not defined
    assert by_event.counts == by_record.counts
    assert pickle.dumps(by_event) == pickle.dumps(by_record)
    return by_record, by_event


def _step_event(engine: FeatureEngine, event: object, record: MarketRecord) -> tuple[object, ...]:
    """`_step` with the event folded in and the values read by its record's symbol."""
    class Both:
        def update(self, _: MarketRecord) -> object:
            return engine.update(event)  # type: ignore[arg-type]

        def vector(self, _: MarketRecord) -> object:
            return engine.vector(record)

    return _step(Both(), record)  # type: ignore[arg-type]


def test_every_real_record_folds_in_as_its_record() -> None:
    records = list(every_real_record())
    by_record, _ = fold_both(records, [payload(r) for r in records])
    assert by_record.counts["applied"] > 100_000


@given(sequences())
@settings(max_examples=300, deadline=None)
def test_synthetic_sequences_fold_in_as_their_records(records: list[MarketRecord]) -> None:
    fold_both(records, [payload(r) for r in records])


@given(sequences(), st.data())
@settings(max_examples=300, deadline=None)
def test_a_body_that_is_not_one_is_the_serdes_to_decode_or_refuse(records: list[MarketRecord],
                                                                  data: st.DataObject) -> None:
    body = bytearray(payload(data.draw(st.sampled_from(records))))
    cut = data.draw(st.integers(0, len(body)))
    match data.draw(st.sampled_from(["truncate", "append", "flip", "header"])):
        case "truncate":
            del body[cut:]
        case "append":
            body.insert(cut, data.draw(st.integers(0, 255)))
        case "flip":
            body[min(cut, len(body) - 1)] ^= data.draw(st.integers(1, 255))
        case "header":
            body[:10] = b"\x00\x00\x00\x00\x07"
    event = DECODER.decode(bytes(body))
    try:
        record = SERDE.decode("any", bytes(body))
    except SerdeError:
        assert event is None  # left to the serde, which dead-letters it
        return
    if event is not None:  # still exactly one body of its schema: both paths agree on it
        assert isinstance(record, MarketRecord)
        fold_both([record], [bytes(body)])


def test_an_event_is_folded_in_once() -> None:
    record = every_real_record()[0]
    event = DECODER.decode(payload(record))
    engine = FeatureEngine()
    engine.update(event)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="folded in once"):
        engine.update(event)  # type: ignore[arg-type]
