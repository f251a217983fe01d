"""Registry persistence (mixed into :class:`~shipyard.store.sql.SqlBackend`).

Every change is written in the same transaction as its audit entry, so the audit log can
never miss a change that happened nor record one that did not. The rules (who may approve,
what may become champion) live in :mod:`shipyard.registry`, not here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shipyard.entities import AuditEntry, ModelVersion, RegisteredModel, ReviewState, Role, User
from shipyard.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.store.sql.engine import read, with_unique_retries, write
from shipyard.store.sql.schema import (
    audit_head,
    audit_log,
    model_aliases,
    model_tags,
    model_versions,
    registered_models,
    users,
)

__all__ = ["GENESIS_HASH", "RegistryMethods", "audit_hash", "move_alias"]

GENESIS_HASH = "0" * 64


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def audit_hash(
    seq: int, at: int, actor: str, action: str, target: str, details: dict[str, Any], prev: str
) -> str:
    """SHA-256 over the entry's content and the previous entry's hash."""
    body = json.dumps(
        [seq, at, actor, action, target, details, prev], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(body.encode()).hexdigest()


def append_audit(
    conn: sa.Connection, actor: str, action: str, target: str, details: dict[str, Any]
) -> None:
    """Append one entry inside the caller's write transaction (which serialises writers)."""
    query = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    head = conn.execute(query).first()
    seq, prev = (head.seq + 1, head.hash) if head is not None else (1, GENESIS_HASH)
    at = _now_ms()
    digest = audit_hash(seq, at, actor, action, target, details, prev)
    conn.execute(
        audit_log.insert().values(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            target=target,
            details=json.dumps(details, sort_keys=True),
            prev_hash=prev,
            hash=digest,
        )
    )
    if head is None:
        conn.execute(audit_head.insert().values(id=1, seq=seq, hash=digest))
    else:
        conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=digest))


def move_alias(
    conn: sa.Connection,
    name: str,
    alias: str,
    version: int,
    *,
    actor: str,
    require_approved: bool = False,
) -> None:
    """Point ``alias`` at ``version`` and audit it, inside the caller's write transaction."""
    model = RegistryMethods._model_row(conn, name)
    row = RegistryMethods._version_row(conn, model.model_id, name, version)
    if require_approved and row.review != ReviewState.APPROVED.value:
        raise PermissionDeniedError(
            f"{name}@{version} is not approved ({row.review}); only an approved "
            f"version can become {alias}"
        )
    previous = conn.execute(
        sa.select(model_aliases.c.version).where(
            model_aliases.c.model_id == model.model_id, model_aliases.c.alias == alias
        )
    ).scalar()
    if previous is None:
        conn.execute(
            model_aliases.insert().values(model_id=model.model_id, alias=alias, version=version)
        )
    else:
        conn.execute(
            model_aliases.update()
            .where(model_aliases.c.model_id == model.model_id, model_aliases.c.alias == alias)
            .values(version=version)
        )
    append_audit(conn, actor, "alias.set", f"{name}@{alias}", {"from": previous, "to": version})


class RegistryMethods:
    """Registry operations of the SQL backend. Needs ``self._engine``."""

    _engine: sa.Engine

    # helpers -------------------------------------------------------------------------------

    def _audited(self, what: str, change: Any) -> Any:
        """Run ``change(conn)`` and its audit entry in one transaction, with retries."""

        def op() -> Any:
            with write(self._engine) as conn:
                return change(conn)

        # Two first-ever audit entries at once collide on audit_head: try again.
        return with_unique_retries(op, what=what)

    @staticmethod
    def _model_row(conn: sa.Connection, name: str) -> Any:
        row = conn.execute(
            registered_models.select().where(registered_models.c.name == name)
        ).first()
        if row is None:
            raise NotFoundError(f"no registered model named {name!r}")
        return row

    @staticmethod
    def _version_row(conn: sa.Connection, model_id: int, name: str, version: int) -> Any:
        row = conn.execute(
            model_versions.select().where(
                model_versions.c.model_id == model_id, model_versions.c.version == version
            )
        ).first()
        if row is None:
            raise NotFoundError(f"model {name!r} has no version {version}")
        return row

    # models --------------------------------------------------------------------------------

    def create_registered_model(
        self, name: str, *, actor: str, description: str = ""
    ) -> RegisteredModel:
        def change(conn: sa.Connection) -> None:
            if conn.execute(
                sa.select(registered_models.c.model_id).where(registered_models.c.name == name)
            ).first():
                raise AlreadyExistsError(f"model {name!r} already exists")
            conn.execute(
                registered_models.insert().values(
                    name=name, description=description, created_at=_now_ms(), created_by=actor
                )
            )
            append_audit(conn, actor, "model.create", name, {"description": description})

        self._audited(f"registering model {name!r}", change)
        return self.get_registered_model(name)

    def get_registered_model(self, name: str) -> RegisteredModel:
        with read(self._engine) as conn:
            row = self._model_row(conn, name)
            aliases = conn.execute(
                sa.select(model_aliases.c.alias, model_aliases.c.version).where(
                    model_aliases.c.model_id == row.model_id
                )
            ).all()
            tags = conn.execute(
                sa.select(model_tags.c.key, model_tags.c.value).where(
                    model_tags.c.model_id == row.model_id, model_tags.c.version == 0
                )
            ).all()
        return RegisteredModel(
            name=row.name,
            created_at=row.created_at,
            created_by=row.created_by,
            description=row.description,
            governed=bool(row.governed),
            aliases=dict(sorted((a, v) for a, v in aliases)),
            tags=dict(sorted((k, v) for k, v in tags)),
        )

    def list_registered_models(self) -> list[RegisteredModel]:
        with read(self._engine) as conn:
            names = conn.execute(
                sa.select(registered_models.c.name).order_by(registered_models.c.name)
            ).scalars()
            found = list(names)
        return [self.get_registered_model(n) for n in found]

    def set_model_governed(self, name: str, governed: bool, *, actor: str) -> None:
        def change(conn: sa.Connection) -> None:
            row = self._model_row(conn, name)
            conn.execute(
                registered_models.update()
                .where(registered_models.c.model_id == row.model_id)
                .values(governed=governed)
            )
            append_audit(conn, actor, "model.governed", name, {"governed": governed})

        self._audited(f"changing governance of {name!r}", change)

    # versions ------------------------------------------------------------------------------

    def create_model_version(
        self,
        name: str,
        *,
        digest: str,
        flavor: str,
        actor: str,
        run_id: str | None = None,
        source: str = "",
        description: str = "",
    ) -> ModelVersion:
        """The next version of ``name`` (the model is registered on first use)."""

        def change(conn: sa.Connection) -> int:
            found = conn.execute(
                sa.select(registered_models.c.model_id).where(registered_models.c.name == name)
            ).scalar()
            if found is None:
                found = conn.execute(
                    registered_models.insert()
                    .values(name=name, created_at=_now_ms(), created_by=actor)
                    .returning(registered_models.c.model_id)
                ).scalar_one()
                append_audit(conn, actor, "model.create", name, {})
            latest = conn.execute(
                sa.select(sa.func.max(model_versions.c.version)).where(
                    model_versions.c.model_id == found
                )
            ).scalar()
            number = (latest or 0) + 1
            conn.execute(
                model_versions.insert().values(
                    model_id=found,
                    version=number,
                    digest=digest,
                    flavor=flavor,
                    run_id=run_id,
                    source=source,
                    description=description,
                    review=ReviewState.NONE.value,
                    created_at=_now_ms(),
                    created_by=actor,
                )
            )
            append_audit(
                conn,
                actor,
                "version.create",
                f"{name}@{number}",
                {"digest": digest, "flavor": flavor, "run_id": run_id},
            )
            return int(number)

        try:  # concurrent registrations may collide on the version number: retried
            number = with_unique_retries(
                lambda: self._in_write(change), what=f"registering a version of {name!r}"
            )
        except IntegrityError as exc:
            raise NotFoundError(
                f"cannot register a version of {name!r}: {run_id!r} is not a run"
            ) from exc
        return self.get_model_version(name, number)

    def _in_write(self, change: Any) -> Any:
        with write(self._engine) as conn:
            return change(conn)

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        with read(self._engine) as conn:
            model = self._model_row(conn, name)
            row = self._version_row(conn, model.model_id, name, version)
            return self._version(conn, name, model.model_id, row)

    def _version(self, conn: sa.Connection, name: str, model_id: int, row: Any) -> ModelVersion:
        aliases = conn.execute(
            sa.select(model_aliases.c.alias).where(
                model_aliases.c.model_id == model_id, model_aliases.c.version == row.version
            )
        ).scalars()
        tags = conn.execute(
            sa.select(model_tags.c.key, model_tags.c.value).where(
                model_tags.c.model_id == model_id, model_tags.c.version == row.version
            )
        ).all()
        return ModelVersion(
            model=name,
            version=row.version,
            digest=row.digest,
            flavor=row.flavor,
            created_at=row.created_at,
            created_by=row.created_by,
            run_id=row.run_id,
            source=row.source,
            description=row.description,
            review=ReviewState(row.review),
            tags=dict(sorted((k, v) for k, v in tags)),
            aliases=tuple(sorted(aliases)),
        )

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        with read(self._engine) as conn:
            model = self._model_row(conn, name)
            rows = conn.execute(
                model_versions.select()
                .where(model_versions.c.model_id == model.model_id)
                .order_by(model_versions.c.version)
            ).all()
            return [self._version(conn, name, model.model_id, r) for r in rows]

    def model_versions_of_runs(self, run_ids: Sequence[str]) -> list[tuple[str, int, str]]:
        """``(model, version, run_id)`` of every version registered from one of ``run_ids``."""
        if not run_ids:
            return []
        with read(self._engine) as conn:
            rows = conn.execute(
                sa.select(
                    registered_models.c.name, model_versions.c.version, model_versions.c.run_id
                )
                .join(registered_models, registered_models.c.model_id == model_versions.c.model_id)
                .where(model_versions.c.run_id.in_(list(run_ids)))
                .order_by(registered_models.c.name, model_versions.c.version)
            )
            return [(r.name, r.version, r.run_id) for r in rows]

    def latest_model_version(self, name: str) -> int:
        with read(self._engine) as conn:
            model = self._model_row(conn, name)
            latest = conn.execute(
                sa.select(sa.func.max(model_versions.c.version)).where(
                    model_versions.c.model_id == model.model_id
                )
            ).scalar()
        if latest is None:
            raise NotFoundError(f"model {name!r} has no versions yet")
        return int(latest)

    def set_review_state(
        self,
        name: str,
        version: int,
        state: ReviewState,
        *,
        actor: str,
        comment: str = "",
        expected: ReviewState | None = None,
    ) -> None:
        """Move a version to ``state``; with ``expected``, only from that state (checked in
        the same transaction, so a concurrent approve and reject cannot both win)."""

        def change(conn: sa.Connection) -> None:
            model = self._model_row(conn, name)
            row = self._version_row(conn, model.model_id, name, version)
            if expected is not None and row.review != ReviewState(expected).value:
                raise InvalidArgumentError(
                    f"{name}@{version} is {row.review}, not {ReviewState(expected).value}: "
                    "someone else reviewed it first"
                )
            conn.execute(
                model_versions.update()
                .where(
                    model_versions.c.model_id == model.model_id,
                    model_versions.c.version == version,
                )
                .values(review=ReviewState(state).value)
            )
            append_audit(
                conn,
                actor,
                f"review.{ReviewState(state).value}",
                f"{name}@{version}",
                {"from": row.review, "comment": comment},
            )

        self._audited(f"reviewing {name}@{version}", change)

    # aliases and tags ----------------------------------------------------------------------

    def set_model_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        require_approved: bool = False,
    ) -> None:
        """Point ``alias`` at ``version`` (moving it if it pointed elsewhere), atomically.

        With ``require_approved`` the version's approval is checked in the same transaction.
        """

        def change(conn: sa.Connection) -> None:
            move_alias(conn, name, alias, version, actor=actor, require_approved=require_approved)

        self._audited(f"setting alias {name}@{alias}", change)

    def delete_model_alias(self, name: str, alias: str, *, actor: str) -> None:
        def change(conn: sa.Connection) -> None:
            model = self._model_row(conn, name)
            deleted = conn.execute(
                model_aliases.delete()
                .where(model_aliases.c.model_id == model.model_id, model_aliases.c.alias == alias)
                .returning(model_aliases.c.version)
            ).scalar()
            if deleted is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            append_audit(conn, actor, "alias.delete", f"{name}@{alias}", {"from": deleted})

        self._audited(f"deleting alias {name}@{alias}", change)

    def resolve_model_alias(self, name: str, alias: str) -> int:
        with read(self._engine) as conn:
            model = self._model_row(conn, name)
            version = conn.execute(
                sa.select(model_aliases.c.version).where(
                    model_aliases.c.model_id == model.model_id, model_aliases.c.alias == alias
                )
            ).scalar()
        if version is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        return int(version)

    def set_model_tag(self, name: str, version: int, key: str, value: str, *, actor: str) -> None:
        """A tag on the model (``version=0``) or on one version."""

        def change(conn: sa.Connection) -> None:
            model = self._model_row(conn, name)
            if version:
                self._version_row(conn, model.model_id, name, version)
            conn.execute(
                model_tags.delete().where(
                    model_tags.c.model_id == model.model_id,
                    model_tags.c.version == version,
                    model_tags.c.key == key,
                )
            )
            conn.execute(
                model_tags.insert().values(
                    model_id=model.model_id, version=version, key=key, value=value
                )
            )
            target = f"{name}@{version}" if version else name
            append_audit(conn, actor, "tag.set", target, {"key": key, "value": value})

        self._audited(f"tagging {name}", change)

    # users ---------------------------------------------------------------------------------

    def set_user(self, name: str, role: Role, *, actor: str) -> None:
        def change(conn: sa.Connection) -> None:
            previous = conn.execute(sa.select(users.c.role).where(users.c.name == name)).scalar()
            if previous is None:
                conn.execute(
                    users.insert().values(name=name, role=role.value, created_at=_now_ms())
                )
            else:
                conn.execute(users.update().where(users.c.name == name).values(role=role.value))
            append_audit(conn, actor, "user.set", name, {"from": previous, "to": role.value})

        self._audited(f"setting user {name!r}", change)

    def set_user_password(self, name: str, password_hash: str | None, *, actor: str) -> None:
        """Store a user's password hash (``None`` removes the password), with an audit entry.

        Raises:
            NotFoundError: no such user.
        """

        def change(conn: sa.Connection) -> None:
            done = conn.execute(
                users.update().where(users.c.name == name).values(password_hash=password_hash)
            ).rowcount
            if not done:
                raise NotFoundError(f"no user {name!r}: `shipyard users add {name} --role ...`")
            action = "user.password" if password_hash else "user.password-removed"
            append_audit(conn, actor, action, name, {})

        self._audited(f"setting the password of {name!r}", change)

    def get_user_password_hash(self, name: str) -> str | None:
        with read(self._engine) as conn:
            found: str | None = conn.execute(
                sa.select(users.c.password_hash).where(users.c.name == name)
            ).scalar()
        return found

    def get_user(self, name: str) -> User | None:
        with read(self._engine) as conn:
            row = conn.execute(users.select().where(users.c.name == name)).first()
        return None if row is None else User(row.name, Role(row.role), row.created_at)

    def list_users(self) -> list[User]:
        with read(self._engine) as conn:
            rows = conn.execute(users.select().order_by(users.c.name)).all()
        return [User(r.name, Role(r.role), r.created_at) for r in rows]

    # audit ---------------------------------------------------------------------------------

    def list_audit(
        self, *, limit: int = 100, target: str | None = None, before: int | None = None
    ) -> list[AuditEntry]:
        """Newest entries first; older than entry ``before`` when given."""
        query = audit_log.select().order_by(audit_log.c.seq.desc()).limit(limit)
        if target is not None:
            query = query.where(audit_log.c.target.startswith(target))
        if before is not None:
            query = query.where(audit_log.c.seq < before)
        with read(self._engine) as conn:
            rows = conn.execute(query).all()
        return [_entry(r) for r in rows]

    def verify_audit(self) -> list[str]:
        """Problems with the audit chain: an edited, inserted or deleted entry. Empty if intact."""
        problems: list[str] = []
        with read(self._engine) as conn:
            head = conn.execute(audit_head.select().where(audit_head.c.id == 1)).first()
            rows = conn.execute(audit_log.select().order_by(audit_log.c.seq)).all()
        prev, expected_seq = GENESIS_HASH, 1
        for row in rows:
            entry = _entry(row)
            if entry.seq != expected_seq:
                problems.append(f"entry {expected_seq} is missing (next is {entry.seq})")
            if entry.prev_hash != prev:
                problems.append(f"entry {entry.seq} does not follow the entry before it")
            recomputed = audit_hash(
                entry.seq,
                entry.at,
                entry.actor,
                entry.action,
                entry.target,
                entry.details,
                entry.prev_hash,
            )
            if recomputed != entry.hash:
                problems.append(f"entry {entry.seq} ({entry.action} {entry.target}) was edited")
            prev, expected_seq = entry.hash, entry.seq + 1
        if head is None and rows:
            problems.append("the audit head record is missing")
        elif head is not None and (head.seq != expected_seq - 1 or head.hash != prev):
            problems.append(
                f"the log ends at entry {expected_seq - 1} but {head.seq} were written: "
                "entries were deleted from the end"
            )
        return problems


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
