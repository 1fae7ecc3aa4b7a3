"""Allow-list bypass: a note that pairs a brand's allow-listed image with a stolen one must not be "allowed as a
whole" because its global vector is close to the brand's note (app.banks.group_matches, step 3). Seen with the
copy-tower candidate model (issue 14): such a mixed note scored 0.83 globally to the allowed note, above the
0.65 threshold, and the old rule then suppressed the stolen image's match too."""

from __future__ import annotations

from datetime import datetime, timezone

from app.audit import POSSIBLE_INFRINGEMENT, Evidence, Match
from app.banks import group_matches
from app.records.banks import Bank, BankEntry, BankKind, EntryOrigin

NOW = datetime(2026, 12, 3, tzinfo=timezone.utc)
BRAND = Bank(1, "brand-assets", BankKind.ALLOW, "allow", None, None, True, "", None, NOW, NOW)
ENTRY = BankEntry(7, "brand-assets", EntryOrigin.LIBRARY, "brand-note", None, None, {}, "admin", NOW)


def image_evidence(query_image: int, score: float) -> Evidence:
    return Evidence("image", query_image, "image", 0, score, score, query_image_index=query_image, matched_image_index=0)


def match(note_id: str, score: float, global_score: float, evidence: list[Evidence]) -> Match:
    return Match(note_id, note_id, score, POSSIBLE_INFRINGEMENT, global_score, score, score, ["element"], evidence)


def test_a_brand_image_beside_a_stolen_one_does_not_allow_the_whole_note():
    brand = match("brand-note", 0.83, 0.83, [image_evidence(0, 0.97)])  # the allowed note: query image 0 only
    stolen = match("stolen-note", 0.80, 0.45, [image_evidence(1, 0.95)])  # someone else's photo: query image 1
    reported, hits, _, suppressed = group_matches(
        [brand, stolen], {"brand-note": [(BRAND, ENTRY)]}, set(), [], n_query_images=2, duplicate=0.90,
        infringement=0.65, limit=10)
    assert [h.bank for h in hits] == ["brand-assets"]
    assert "stolen-note" in [m.note_id for m in reported]  # still flagged
    assert "stolen-note" not in [s.note_id for s in suppressed]


def test_a_note_whose_every_image_is_the_brands_is_allowed_as_a_whole():
    brand = match("brand-note", 0.90, 0.88, [image_evidence(0, 0.97), image_evidence(1, 0.93)])
    repost = match("repost", 0.85, 0.85, [image_evidence(0, 0.96), image_evidence(1, 0.92)])
    reported, _, _, suppressed = group_matches(
        [brand, repost], {"brand-note": [(BRAND, ENTRY)]}, set(), [], n_query_images=2, duplicate=0.90,
        infringement=0.65, limit=10)
    assert "repost" not in [m.note_id for m in reported]
    (s,) = suppressed
    assert s.note_id == "repost" and "as a whole" in s.reason
