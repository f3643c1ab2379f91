"""Housekeeping jobs (docs/jobs.md) that belong to no other service: expired tokens,
old webhook deliveries, storage stats. Each is one set-based statement (or a keyset walk of them),
so running it twice at once ends in the same state as running it once."""

from __future__ import annotations

from datetime import timedelta

from fastest.domain.ids import iso
from fastest.platform import Platform

TOKEN_RETENTION = timedelta(days=7)
WEBHOOK_LOG_RETENTION = timedelta(days=30)
STATS_USERS_PER_STATEMENT = 200


async def purge_expired_tokens(platform: Platform) -> int:
    """Bearer tokens a week past their expiry or their revocation (they authenticate nothing)."""
    cutoff = iso(platform.clock.now() - TOKEN_RETENTION)
    result = await platform.db.prepare(
        "DELETE FROM auth_tokens WHERE expires_at < ? OR (revoked_at IS NOT NULL AND revoked_at < ?)"
    ).bind(cutoff, cutoff).run()
    return result.changes


async def purge_webhook_deliveries(platform: Platform) -> int:
    """Delivery logs older than 30 days, then finished messages with no log left (and messages
    still pending after 30 days: their endpoint was switched off by its owner)."""
    cutoff = iso(platform.clock.now() - WEBHOOK_LOG_RETENTION)
    deliveries, messages = await platform.db.batch([
        platform.db.prepare("DELETE FROM webhook_deliveries WHERE created_at < ?").bind(cutoff),
        platform.db.prepare(
            "DELETE FROM webhook_messages WHERE (status IN ('succeeded', 'failed') AND updated_at < ? "
            "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.message_id = webhook_messages.id)) "
            # Still pending after 30 days: its endpoint was switched off by its owner meanwhile.
            "OR (status = 'pending' AND created_at < ?)"
        ).bind(cutoff, cutoff),
    ])
    return deliveries.changes + messages.changes


async def recompute_storage_stats(platform: Platform) -> int:
    """storage_stats from the live blob and manifest rows, a page of users per statement (an upsert:
    a concurrent run writes the same figures). Returns how many users were recomputed."""
    now = iso(platform.clock.now())
    done = 0
    after = ""
    while True:
        ids = [r["id"] for r in (
            await platform.db.prepare("SELECT id FROM users WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after, STATS_USERS_PER_STATEMENT).all()
        ).results]
        if not ids:
            return done
        await platform.db.prepare(
            "INSERT INTO storage_stats (user_id, blob_count, blob_bytes, manifest_count, manifest_bytes, computed_at) "
            "SELECT u.id, "
            "(SELECT COUNT(*) FROM blob_refs b WHERE b.user_id = u.id AND b.state = 'live'), "
            "(SELECT COALESCE(SUM(size), 0) FROM blob_refs b WHERE b.user_id = u.id AND b.state = 'live'), "
            "(SELECT COUNT(*) FROM manifests m WHERE m.user_id = u.id AND m.state = 'live'), "
            "(SELECT COALESCE(SUM(size), 0) FROM manifests m WHERE m.user_id = u.id AND m.state = 'live'), ? "
            "FROM users u WHERE u.id >= ? AND u.id <= ? "
            "ON CONFLICT(user_id) DO UPDATE SET blob_count = excluded.blob_count, blob_bytes = excluded.blob_bytes, "
            "manifest_count = excluded.manifest_count, manifest_bytes = excluded.manifest_bytes, "
            "computed_at = excluded.computed_at"
        ).bind(now, ids[0], ids[-1]).run()
        done += len(ids)
        after = ids[-1]
