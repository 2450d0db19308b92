"""Rows that are written once and never changed: the audit trail.

The model refuses save() of an existing row, delete(), and QuerySet update()/delete(); on
PostgreSQL a trigger (events_trigger_sql) refuses UPDATE and DELETE under the ORM too. The one
change allowed is the one the database makes itself when an actor's user or API key is deleted:
the event keeps its actor label and loses the link (on_delete=SET_NULL).
"""

from typing import Any

from django.db import models

# The actor links that on_delete=SET_NULL may clear; nothing else ever changes.
CLEARABLE = frozenset({"actor_user", "actor_user_id", "actor_api_key", "actor_api_key_id"})


class AppendOnlyError(Exception):
    """An attempt to change or delete an event."""

    def __init__(self, model: type[models.Model], doing: str):
        super().__init__(
            f"{model._meta.verbose_name} rows are append-only: they cannot be {doing}; "
            "record a new event instead."
        )


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        if set(kwargs) <= CLEARABLE and all(value is None for value in kwargs.values()):
            return super().update(**kwargs)  # a deleted user or key (on_delete=SET_NULL)
        raise AppendOnlyError(self.model, "updated")

    def delete(self) -> Any:
        raise AppendOnlyError(self.model, "deleted")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise AppendOnlyError(self.model, "updated")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(type(self), "updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError(type(self), "deleted")


def events_trigger_sql(table: str) -> tuple[str, str]:
    """(forward, reverse) SQL for PostgreSQL: refuse UPDATE and DELETE on `table`, except
    clearing the actor links (SET_NULL when a user or API key is deleted). TRUNCATE (a test
    database being flushed) is not a row change and passes."""
    function = f"{table}_append_only"
    forward = f"""
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(NEW) - 'actor_user_id' - 'actor_api_key_id')
           = (to_jsonb(OLD) - 'actor_user_id' - 'actor_api_key_id')
       AND (NEW.actor_user_id IS NULL OR NEW.actor_user_id = OLD.actor_user_id)
       AND (NEW.actor_api_key_id IS NULL OR NEW.actor_api_key_id = OLD.actor_api_key_id) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'Rows of % are append-only: % refused.', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER {function} BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {function}();
"""
    reverse = f"DROP TRIGGER IF EXISTS {function} ON {table}; DROP FUNCTION IF EXISTS {function}();"
    return forward, reverse
