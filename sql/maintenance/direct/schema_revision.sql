-- title: Schema revision
-- description: The Alembic revision the index is at; reports need the newest one.
SELECT version_num FROM alembic_version
