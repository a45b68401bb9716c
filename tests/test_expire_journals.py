"""``expire`` collects restore journals that nobody will resume, and only those."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from labelvault.restore import journal_prefix
from labelvault.retention import RetentionPolicy
from tests.test_cli import Cli, cli

__all__ = ["cli"]


def test_expire_collects_abandoned_restore_journals(cli: Cli) -> None:
    cli.capture()
    policy = RetentionPolicy(keep_last=5)
    with cli.vault() as vault:
        abandoned = journal_prefix(cli.ref.prefix, "abandoned")
        vault.store.put(f"{abandoned}/restore.json", b"{}")
        vault.store.put(f"{abandoned}/steps/a000000-dataset.json", b"{}")

        today = vault.expire(cli.ref, policy, dry_run=False)
        assert today.journals == ()  # younger than the grace period: it may still be resumed
        assert vault.store.exists(f"{abandoned}/restore.json")

        later = datetime.now(UTC) + timedelta(days=30)
        dry = vault.expire(cli.ref, policy, dry_run=True, now=later)
        assert dry.journals == (abandoned,)
        assert vault.store.exists(f"{abandoned}/restore.json")

        done = vault.expire(cli.ref, policy, dry_run=False, now=later)
        assert done.journals == (abandoned,)
        assert done.summary()["journals_removed"] == [abandoned]
        assert list(vault.store.list(f"{abandoned}/")) == []
        assert vault.version(cli.ref).number == 1  # the version itself is kept
