"""FindDocuments by patient and status is answered from an index, not a table scan.

The statement the query really sends is captured and explained on the same
database: PostgreSQL (EXPLAIN, after ANALYZE of a table with many patients)
and SQLite (EXPLAIN QUERY PLAN).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from hub.db import Database
from registry.store import insert_objects
from registry.vocabulary import StoredQueryId
from tests.factories.registry_rows import APPROVED, EPOCH, PATIENT, RegistryRows, document_object, quoted

PATIENT_INDEXES = ("ix_registry_objects_patient_kind_status", "ix_registry_objects_patient_id")




def _captured_find_documents(reg: RegistryRows, database: Database) -> tuple[str, Any]:
    captured: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "registry_objects" in statement and statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        found = reg.refs(StoredQueryId.FIND_DOCUMENTS, {"$XDSDocumentEntryPatientId": quoted(PATIENT),
                                                        "$XDSDocumentEntryStatus": quoted(APPROVED)})
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert len(found) == 2
    [query] = captured
    return query


def test_find_documents_uses_the_patient_index(reg: RegistryRows, database: Database) -> None:
    reg.document()
    reg.document()
    crowd = [(document_object(f"CROWD-{n}^^^&1.3.6.1.4.1.21367.2026.7&ISO"), False) for n in range(1500)]
    with database.session() as session:
        insert_objects(session, crowd, reg.org_a, EPOCH)   # type: ignore[arg-type]
    statement, parameters = _captured_find_documents(reg, database)
    with database.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE registry_objects"))
            conn.execute(text("ANALYZE registry_codes"))
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
        else:
            plan = "\n".join(str(row[-1]) for row in
                             conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
    assert any(index in plan for index in PATIENT_INDEXES), plan
    assert "Seq Scan on registry_objects" not in plan and "SCAN registry_objects" not in plan, plan
