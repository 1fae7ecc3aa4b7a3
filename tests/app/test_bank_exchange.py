"""PDQ hash lists in the formats of python-threatexchange (local file exchange), the PDQ hasher's CSV, HMA
(OpenMediaMatch signal and bank content JSON) and ThreatExchange threat descriptors."""

from __future__ import annotations

import json

import pytest

from app.bank_exchange import parse_pdq_list

A, B = "a" * 64, "0123456789abcdef" * 4


def hexes(text):
    signals, skipped = parse_pdq_list(text)
    return [s.pdq_hex for s in signals], skipped


def test_threatexchange_file_exchange_lines():
    assert hexes(f"# list\npdq {A}\n{B.upper()}\nvideo_md5 d41d8cd98f00b204e9800998ecf8427e\n") == (
        [A, B], ["line 4: signal type 'video_md5' is not PDQ"])


def test_pdq_hasher_csv_keeps_quality_and_file():
    signals, _ = parse_pdq_list(f"{A},87,photos/x.jpg\n{B},100\n")
    assert [(s.pdq_hex, s.quality, s.details) for s in signals] == [(A, 87, {"file": "photos/x.jpg"}), (B, 100, {})]


def test_hma_signal_and_bank_content_json():
    assert hexes(json.dumps({"pdq": A})) == ([A], [])
    assert hexes(json.dumps([{"pdq": A}, {"id": 7, "signals": {"pdq": B, "video_md5": "x"}}, {"video_md5": "y"}]))[0] == [A, B]
    assert hexes("\n".join(json.dumps({"pdq": h}) for h in (A, B))) == ([A, B], [])  # JSON lines


def test_threatexchange_descriptors():
    doc = {"data": [{"id": "1", "type": "HASH_PDQ", "raw_indicator": A, "tags": ["t"]},
                    {"id": "2", "type": "HASH_MD5", "raw_indicator": "d41d8cd98f00b204e9800998ecf8427e"}]}
    signals, skipped = parse_pdq_list(json.dumps(doc))
    assert [(s.pdq_hex, s.details) for s in signals] == [(A, {"id": "1", "tags": ["t"]})] and len(skipped) == 1


@pytest.mark.parametrize("text, where", [("", "empty"), ("pdq 1234\n", "line 1"), (f"{A}\nnonsense\n", "line 2"),
                                         (json.dumps([{"pdq": "zz"}]), "item 0"), (f"{A},101\n", "quality")])
def test_malformed_lists_name_where(text, where):
    with pytest.raises(ValueError, match=where):
        parse_pdq_list(text)
