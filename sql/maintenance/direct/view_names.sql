-- title: View names
-- description: The views of a SQLite file; the report_* ones are the saved reports without parameters.
SELECT name FROM sqlite_master WHERE type = 'view'
