"""The dashboard over a damaged store: a SQLite file that is not an MLflow database gives every
page a plain message (no traceback, no source file paths), and the file is left as it was.
The same in Chromium: test_dashboard_browser.py."""

from __future__ import annotations

import os
import sqlite3

import pytest
from dashboard_support import app_test

from dashboards import store

PAGES = ["views/leaderboard.py", "views/overview.py", "views/trial.py", "views/search.py",
         "views/registry.py"]  # fmt: skip
# What a traceback would show: Python's frame lines and the paths of the installed packages.
TRACEBACK_SIGNS = ("Traceback", 'File "', "site-packages", '.py", line', "sqlalchemy.exc")


def no_traceback(text: str) -> None:
    assert not any(sign in text for sign in TRACEBACK_SIGNS), text


def test_probe_names_a_damaged_store_in_one_plain_message(tmp_path):
    garbage = tmp_path / "mlflow.db"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(store.StoreError) as caught:
        store.probe(f"sqlite:///{garbage}")
    message = str(caught.value)
    assert message.startswith(f"The MLflow store `sqlite:///{garbage}` cannot be read: it is not")
    assert "\n" not in message
    no_traceback(message)
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(store.StoreError, match="without MLflow's tables"):
        store.probe(f"sqlite:///{other}")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_over_a_damaged_store_shows_a_message(page, tmp_path, monkeypatch):
    garbage = tmp_path / "mlflow.db"
    garbage.write_bytes(os.urandom(4096))
    before = garbage.read_bytes()
    at = app_test(f"sqlite:///{garbage}", monkeypatch).run()
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("cannot be read: it is not an SQLite database" in e for e in errors), errors
    for text in [*errors, *(m.value for m in at.markdown), *(c.value for c in at.caption)]:
        no_traceback(text)
    assert garbage.read_bytes() == before


def test_a_store_damaged_past_the_probe_still_gives_a_message(tmp_path, monkeypatch):
    """Where the quick check passes but MLflow cannot open the database, the MLflow client's
    own error becomes the page's message (its first line)."""
    import search.stores

    monkeypatch.setattr(search.stores, "sqlite_problem", lambda path: None)
    garbage = tmp_path / "mlflow.db"
    garbage.write_bytes(os.urandom(4096))
    at = app_test(f"sqlite:///{garbage}", monkeypatch).run()
    assert not at.exception, [e.message for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("could not answer: (sqlite3.DatabaseError) file is not a database" in e
               for e in errors), errors  # fmt: skip
    for text in errors:
        no_traceback(text)
