"""indexes on the QIDO-RS matching keys of dicom_instances

Study searches match on the patient id, the study date (often a range) and
the accession number; without an index each search read every instance row.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 15:05:00
"""

from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

COLUMNS = ("accession_number", "dicom_patient_id", "study_date")


def upgrade() -> None:
    with op.batch_alter_table('dicom_instances', schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.create_index(batch_op.f(f'ix_dicom_instances_{column}'), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dicom_instances', schema=None) as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_index(batch_op.f(f'ix_dicom_instances_{column}'))
