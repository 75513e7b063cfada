-- title: Stored reports
-- description: The saved reports as the index holds them, in the order reports.installed gives
--   them, to see whether this version's sql/ must be installed again.
SELECT name, title, description, params, sql FROM reports ORDER BY name
