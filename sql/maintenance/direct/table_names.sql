-- title: Table names
-- description: The tables of a SQLite file, as SQLAlchemy's inspector lists them (SQLite's own
--   sqlite_* tables left out): an index has alembic_version, a file of another program does not.
SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
