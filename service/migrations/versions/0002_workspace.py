"""workspace: sessions, theme runs, codebook, alerts, webhooks; a reporting index on feedback

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 05:02:48.294774
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bazkhord.service.db

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('codebook_edits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('theme_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('target_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('subtheme_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('comment_id', sa.String(length=200), nullable=True),
    sa.Column('start', sa.Integer(), nullable=True),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('made_by', sa.String(length=100), nullable=False),
    sa.Column('made_at', bazkhord.service.db.UtcDateTime(), nullable=False),
    sa.Column('undone_by', sa.String(length=100), nullable=True),
    sa.Column('undone_at', bazkhord.service.db.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('codebook_themes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('aspect', sa.String(length=64), nullable=True),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('label_en', sa.Text(), nullable=True),
    sa.Column('keyphrases', sa.JSON(), nullable=False),
    sa.Column('signature', sa.JSON(), nullable=False),
    sa.Column('first_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('last_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('new', sa.Boolean(), nullable=False),
    sa.Column('direction', sa.String(length=32), nullable=True),
    sa.Column('q_value', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('theme_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=100), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('started_at', bazkhord.service.db.UtcDateTime(), nullable=False),
    sa.Column('finished_at', bazkhord.service.db.UtcDateTime(), nullable=True),
    sa.Column('comments', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('model_name', sa.String(length=100), nullable=True),
    sa.Column('model_version', sa.String(length=100), nullable=True),
    sa.Column('report', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('theme_runs', schema=None) as batch_op:
        batch_op.create_index('ux_theme_runs_running', ['status'], unique=True,
                              sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))

    op.create_table('webhooks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', bazkhord.service.db.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('theme_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', bazkhord.service.db.UtcDateTime(), nullable=False),
    sa.Column('deliveries', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['theme_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_run_id'), ['run_id'], unique=False)

    op.create_table('codebook_subthemes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('theme_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('keyphrases', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['theme_id'], ['codebook_themes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('codebook_subthemes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_codebook_subthemes_theme_id'), ['theme_id'], unique=False)

    op.create_table('workspace_sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('api_key_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('created_at', bazkhord.service.db.UtcDateTime(), nullable=False),
    sa.Column('expires_at', bazkhord.service.db.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_sha256')
    )
    with op.batch_alter_table('workspace_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workspace_sessions_api_key_id'), ['api_key_id'], unique=False)

    op.create_table('theme_statements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('feedback_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('start', sa.Integer(), nullable=False),
    sa.Column('end', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.Column('sentiment', sa.String(length=32), nullable=False),
    sa.Column('complaints', sa.Integer(), nullable=False),
    sa.Column('found_theme_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('found_subtheme_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('theme_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subtheme_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('sole', sa.Boolean(), nullable=False),
    sa.Column('lead', sa.Boolean(), nullable=False),
    sa.Column('created_at', bazkhord.service.db.UtcDateTime(), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('channel', sa.String(length=100), nullable=True),
    sa.Column('product', sa.String(length=200), nullable=True),
    sa.Column('segment', sa.String(length=100), nullable=True),
    sa.Column('model_version', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['theme_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('theme_statements', schema=None) as batch_op:
        batch_op.create_index('ix_theme_statements_run_feedback', ['run_id', 'feedback_id'], unique=False)
        batch_op.create_index('ix_theme_statements_run_theme', ['run_id', 'theme_id', 'created_at'], unique=False)
        batch_op.create_index('ix_theme_statements_counts', ['run_id', 'theme_id', 'day', 'lead', 'sole'], unique=False)

    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_reporting',
                              ['created_at', 'sentiment', 'channel', 'product', 'segment', 'model_version'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback_reporting')

    with op.batch_alter_table('theme_statements', schema=None) as batch_op:
        batch_op.drop_index('ix_theme_statements_counts')
        batch_op.drop_index('ix_theme_statements_run_theme')
        batch_op.drop_index('ix_theme_statements_run_feedback')

    op.drop_table('theme_statements')
    with op.batch_alter_table('workspace_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workspace_sessions_api_key_id'))

    op.drop_table('workspace_sessions')
    with op.batch_alter_table('codebook_subthemes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_codebook_subthemes_theme_id'))

    op.drop_table('codebook_subthemes')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_run_id'))

    op.drop_table('alerts')
    op.drop_table('webhooks')
    with op.batch_alter_table('theme_runs', schema=None) as batch_op:
        batch_op.drop_index('ux_theme_runs_running', sqlite_where=sa.text("status = 'running'"),
                            postgresql_where=sa.text("status = 'running'"))

    op.drop_table('theme_runs')
    op.drop_table('codebook_themes')
    op.drop_table('codebook_edits')
