"""corrections: analysts' labels beside the model's, the retraining jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bazkhord.service.db

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('retrain_jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.Text(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('started_at', bazkhord.service.db.UtcDateTime(), nullable=False),
    sa.Column('finished_at', bazkhord.service.db.UtcDateTime(), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('champion', sa.String(length=100), nullable=True),
    sa.Column('challenger', sa.String(length=100), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('figures', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('retrain_jobs', schema=None) as batch_op:
        batch_op.create_index('ux_retrain_jobs_running', ['status'], unique=True,
                              sqlite_where=sa.text("status = 'running'"),
                              postgresql_where=sa.text("status = 'running'"))

    op.create_table('corrections',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('feedback_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('field', sa.String(length=16), nullable=False),
    sa.Column('aspect', sa.String(length=64), nullable=True),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.Column('model_value', sa.String(length=64), nullable=True),
    sa.Column('start', sa.Integer(), nullable=True),
    sa.Column('made_by', sa.String(length=100), nullable=False),
    sa.Column('made_at', bazkhord.service.db.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_corrections_feedback_id'), ['feedback_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_corrections_made_at'), ['made_at'], unique=False)

    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.add_column(sa.Column('human_sentiment', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('corrected_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('corrected_at', bazkhord.service.db.UtcDateTime(), nullable=True))
        batch_op.drop_index(batch_op.f('ix_feedback_reporting'))
        batch_op.create_index('ix_feedback_reporting', ['created_at', 'sentiment', 'channel', 'product', 'segment',
                                                        'model_version', 'human_sentiment'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_corrected_at'), ['corrected_at'], unique=False)

    with op.batch_alter_table('feedback_aspects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=8), server_default='model', nullable=False))
        batch_op.add_column(sa.Column('human_polarity', sa.String(length=32), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('feedback_aspects', schema=None) as batch_op:
        batch_op.drop_column('human_polarity')
        batch_op.drop_column('origin')

    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_corrected_at'))
        batch_op.drop_index('ix_feedback_reporting')
        batch_op.create_index(batch_op.f('ix_feedback_reporting'), ['created_at', 'sentiment', 'channel', 'product',
                                                                  'segment', 'model_version'], unique=False)
        batch_op.drop_column('corrected_at')
        batch_op.drop_column('corrected_by')
        batch_op.drop_column('human_sentiment')

    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_corrections_made_at'))
        batch_op.drop_index(batch_op.f('ix_corrections_feedback_id'))

    op.drop_table('corrections')
    with op.batch_alter_table('retrain_jobs', schema=None) as batch_op:
        batch_op.drop_index('ux_retrain_jobs_running', sqlite_where=sa.text("status = 'running'"),
                            postgresql_where=sa.text("status = 'running'"))

    op.drop_table('retrain_jobs')
