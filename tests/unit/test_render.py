from shipyard.api.server import commit_summary
from shipyard.cli.render import duration


def test_durations_are_short_and_rounded_down():
    assert [duration(s) for s in (-1, 0, 42, 60, 192, 600, 3599)] == ["0s", "0s", "42s", "1m", "3m 12s", "10m", "59m"]
    assert [duration(s) for s in (3600, 7500, 86400, 3 * 86400 + 4 * 3600 + 59)] == ["1h", "2h 5m", "1d", "3d 4h"]


def test_a_release_names_the_commit_author_and_subject_shortened():
    assert commit_summary("Jane Doe", "Fix the login page") == " by Jane Doe: Fix the login page"
    assert commit_summary("", "") == ""
    long = commit_summary("Jane Doe", "x" * 100)
    assert len(long) == 60 and long.endswith("…")
