from shipyard.addons.postgres import Backup, Credentials, app_environment, backup_due, expired, role_name

DAY = 24 * 3600


def test_backup_due_daily_from_the_last_automatic_one():
    assert backup_due([], 1000.0, DAY)
    manual = Backup("b1", 10, 0.0)
    assert backup_due([manual], 10.0, DAY)
    assert not backup_due([Backup("a1", 10, 100.0), manual], 100.0 + DAY - 1, DAY)
    assert backup_due([Backup("a1", 10, 100.0)], 100.0 + DAY, DAY)


def test_retention_keeps_the_newest_automatic_and_every_manual_backup():
    backups = [Backup(f"a{i}", 1, float(i)) for i in range(10)] + [Backup("b0", 1, 0.0)]
    assert [b.id for b in expired(backups, 7)] == ["a2", "a1", "a0"]


def test_app_environment_contract():
    creds = Credentials("127.0.0.1", 5433, "app_my_blog", "app_my_blog", "p@ss/word")
    env = app_environment(creds, "verify-full", "/data/ca/ca.crt")
    assert role_name("my-blog") == "app_my_blog"
    assert env["DATABASE_URL"] == "postgresql://app_my_blog:p%40ss%2Fword@127.0.0.1:5433/app_my_blog"
    assert env["PGSSLMODE"] == "verify-full" and env["PGSSLROOTCERT"] == "/data/ca/ca.crt"
    assert env["PGPASSWORD"] == "p@ss/word" and env["PGPORT"] == "5433"


def test_external_admin_url():
    from shipyard.addons.postgres import external_target

    t = external_target("postgresql://admin:p%40ss@db.example:6543/postgres?sslmode=verify-ca&sslrootcert=/ca.pem")
    assert (t.host, t.port, t.user, t.password, t.sslmode, t.sslrootcert) == \
        ("db.example", 6543, "admin", "p@ss", "verify-ca", "/ca.pem")
