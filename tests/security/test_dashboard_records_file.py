"""Replay: the records database named as an upload (issue 12, item 2), the exact sequence of the attack.

A moderator's check_upload named the live `uninote.db`. Gradio opened and closed the file outside SQLite
(copying it to its cache), which drops every POSIX lock the dashboard process's SQLite held on it; the next
writer in another process (`uninote user add`, documented as safe while the dashboard runs) then found
itself the last user of the database, checkpointed and deleted the dashboard's -wal/-shm, and the
dashboard went on writing into the deleted files: sign-ins answered 500 `disk I/O error` and acknowledged
audit rows were gone from the file. Now the request is refused before the file is opened, and every row
the dashboard acknowledged is in the file after it stops.
"""

from __future__ import annotations

import uuid

import pytest

from dashboard_attack_support import (audit_count, file_data, fn_index, join, result, sign_in, start_dashboard,
                                      uninote)

pytestmark = pytest.mark.slow
SIGN_INS = 6  # acknowledged sign-ins before and after the attack, each one audit row


def test_naming_the_live_database_loses_no_row(tmp_path):
    dashboard = start_dashboard(tmp_path)
    try:
        http = dashboard.http()
        acknowledged = 0
        for _ in range(SIGN_INS):  # the dashboard's pooled SQLite connections are open and in WAL mode
            assert sign_in(http, "mod1").status_code == 303
            acknowledged += 1
        assert (dashboard.home / "uninote.db-wal").exists()

        index, dep = fn_index(http, "/dashboard", "check_upload")
        attacks = []
        for target in (dashboard.database, f"{dashboard.database}-wal", f"{dashboard.database}-shm"):
            session = uuid.uuid4().hex
            response = join(http, "/dashboard", index, [[file_data(target)], "", ""], session,
                            trigger_id=dep["targets"][0][0])
            if response.status_code == 200:  # accepted (the old code): let the event run to its end
                result(http, "/dashboard", session)
            attacks.append(response.status_code)

        added = uninote(dashboard.home, "user", "add", "--username", "late1", "--password-stdin",
                        stdin="late-password-1\n")
        assert added.returncode == 0, added.stderr[-2000:]

        answers = [sign_in(http, "mod1").status_code for _ in range(SIGN_INS)]
        acknowledged += answers.count(303)
        answers.append(sign_in(http, "late1", "late-password-1").status_code)
    finally:
        dashboard.stop()
    assert "disk I/O error" not in dashboard.log.read_text()
    assert answers == [303] * (SIGN_INS + 1)
    # read after the dashboard closed its connections: what is in the file is all there is
    assert audit_count(dashboard, "sign_in", "mod1") == acknowledged
    assert audit_count(dashboard, "sign_in", "late1") == 1
    assert audit_count(dashboard, "user_add", "cli") == 4  # the 3 accounts of the fixture and late1
    assert attacks == [403, 403, 403]
    assert audit_count(dashboard, "file_refused", "mod1") == 3
